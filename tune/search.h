/* tune/search.h: the candidate pool of the search (tune/search.c): scoring
 * candidates in parallel without LLVM, a hash set for de-duplication. */
#ifndef KILN_TUNE_SEARCH_H
#define KILN_TUNE_SEARCH_H

#include <stddef.h>

#include "tune/tune.h"
#include "tune/tuner.h"

typedef struct SearchCand {
    const TraceProg *space; /* not owned */
    TDec *dec;              /* space->nsamp decisions (owned) */
    bool *active;           /* from the last apply */
    /* filled by search_evaluate: */
    bool ok;       /* applied and lowered */
    char *plain;   /* the applied schedule as plain text */
    uint64_t hash; /* structural hash: of the plain text */
    float *rows;   /* feature rows */
    int nrows;
    double score;  /* filled by search_predict */
    double gflops; /* measured (0: not measured or failed) */
    int reg_class; /* tuner: register-tile class of the rows when measured */
} SearchCand;

int search_cand_init(SearchCand *c, const TraceProg *t, const TDec *dec); /* dec may be NULL */
int search_cand_copy(SearchCand *to, const SearchCand *from);
/* As search_cand_copy, with what evaluation and prediction filled in (ok,
 * plain, hash, rows, score, gflops): search_evaluate skips such a copy. */
int search_cand_copy_full(SearchCand *to, const SearchCand *from);
void search_cand_fini(SearchCand *c);

/* 64 bits of tune_trace_hash(plain) (never 0). */
uint64_t search_hash_text(const char *plain);

/* Applies, lowers and featurises c[0..n) on `threads` threads (joined
 * before returning).  Undecided decisions are sampled from seeds drawn
 * from *rng in candidate order, so results do not depend on threads. */
int search_evaluate(const Program *p, SearchCand *c, int n, int threads, uint64_t *rng);
/* Scores evaluated candidates with the model (failed ones get -1e300). */
int search_predict(kiln_cost_model *m, SearchCand *c, int n, kiln_error *e);

typedef struct HashSet {
    uint64_t *v;
    size_t n, cap;
} HashSet;
bool hset_has(const HashSet *h, uint64_t k);
bool hset_add(HashSet *h, uint64_t k); /* false when present (or out of memory) */
void hset_free(HashSet *h);

#endif
