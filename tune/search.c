/* tune/search.c: mutators and the candidate pool of the evolutionary
 * search (MetaSchedule's EvolutionarySearch, scaled to a small machine).
 *
 * A candidate is (design space, decisions).  Scoring one means applying
 * its trace to a fresh schedule, lowering it (no LLVM), extracting feature
 * rows and asking the cost model: tens of microseconds, spread over a few
 * threads that live only for the duration of one scoring pass (the parent
 * forks measurement workers, so no thread may outlive a pass).  The cost
 * model itself is called from the calling thread only. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower.h"
#include "tune/database.h"
#include "tune/features.h"
#include "tune/search.h"

/* ------------------------------------------------------------ mutators */
static int64_t rnd(uint64_t *rng, int64_t n)
{
    return n <= 1 ? 0 : (int64_t)((ir_rand(rng) >> 11) % (uint64_t)n);
}

/* MutateTileSize: move a divisor d of one factor to another factor. */
static bool mutate_tile(const TInst *in, TDec *d, uint64_t *rng)
{
    if (d->n != in->n || in->n < 2)
        return false;
    for (int attempt = 0; attempt < 16; attempt++) {
        int x = (int)rnd(rng, in->n);
        if (d->v[x] <= 1)
            continue;
        int64_t divs[64];
        int nd = 0;
        for (int64_t k = 2; k <= d->v[x] && nd < 64; k++)
            if (d->v[x] % k == 0)
                divs[nd++] = k;
        int64_t dv = divs[rnd(rng, nd)];
        int y = (int)rnd(rng, in->n - 1);
        if (y >= x)
            y++;
        if (y == in->n - 1 && in->max_inner > 0 && d->v[y] * dv > in->max_inner)
            continue;
        d->v[x] /= dv;
        d->v[y] *= dv;
        return true;
    }
    return false;
}

/* Re-sample a categorical to a different choice (probabilities
 * renormalised without the old one). */
static bool mutate_cat(const TInst *in, TDec *d, uint64_t *rng)
{
    if (in->nchoices < 2)
        return false;
    double p[TRACE_MAX_CHOICES];
    int old = d->n ? (int)d->v[0] : -1;
    for (int i = 0; i < in->nchoices; i++)
        p[i] = i == old ? 0 : (in->probs[i] > 0 ? in->probs[i] : 1e-3);
    d->n = 1;
    d->v[0] = trace_sample_cat(p, in->nchoices, rng);
    return d->v[0] != old;
}

bool search_mutate(const TraceProg *t, TDec *dec, const bool *active, uint64_t *rng)
{
    /* MetaSchedule DefaultLLVM: tile 0.90, compute location 0.05 (here: the
     * sampled inline and other categoricals such as the vector width),
     * unroll 0.03, parallel 0.02.  A kind with no instruction gives its
     * turn to the others. */
    static const double prob[4] = {0.90, 0.05, 0.03, 0.02};
    int cand[4][64], nc[4] = {0, 0, 0, 0};
    for (int k = 0; k < t->nsamp; k++) {
        if (active && !active[k])
            continue;
        const TInst *in = &t->v[t->samp_inst[k]];
        int kind = in->kind == TI_TILE         ? 0
                   : in->role == ROLE_UNROLL   ? 2
                   : in->role == ROLE_PARALLEL ? 3
                                               : 1;
        if (in->kind == TI_TILE && in->n < 2)
            continue;
        if (in->kind == TI_CAT && in->nchoices < 2)
            continue;
        if (nc[kind] < 64)
            cand[kind][nc[kind]++] = k;
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        double p[4];
        for (int i = 0; i < 4; i++)
            p[i] = nc[i] ? prob[i] : 0;
        if (p[0] + p[1] + p[2] + p[3] <= 0)
            return false;
        int kind = trace_sample_cat(p, 4, rng);
        int k = cand[kind][rnd(rng, nc[kind])];
        const TInst *in = &t->v[t->samp_inst[k]];
        bool ok =
            in->kind == TI_TILE ? mutate_tile(in, &dec[k], rng) : mutate_cat(in, &dec[k], rng);
        if (ok)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------ pool */
void search_cand_fini(SearchCand *c)
{
    free(c->dec);
    free(c->active);
    free(c->rows);
    free(c->plain);
    memset(c, 0, sizeof *c);
}

int search_cand_init(SearchCand *c, const TraceProg *t, const TDec *dec)
{
    memset(c, 0, sizeof *c);
    c->space = t;
    int n = t->nsamp ? t->nsamp : 1;
    c->dec = calloc((size_t)n, sizeof(TDec));
    c->active = calloc((size_t)n, sizeof(bool));
    if (!c->dec || !c->active) {
        search_cand_fini(c);
        return KILN_ENOMEM;
    }
    if (dec)
        memcpy(c->dec, dec, sizeof(TDec) * (size_t)t->nsamp);
    return KILN_OK;
}

int search_cand_copy(SearchCand *to, const SearchCand *from)
{
    int rc = search_cand_init(to, from->space, from->dec);
    if (!rc && from->space->nsamp)
        memcpy(to->active, from->active, sizeof(bool) * (size_t)from->space->nsamp);
    return rc;
}

int search_cand_copy_full(SearchCand *to, const SearchCand *from)
{
    int rc = search_cand_copy(to, from);
    if (rc)
        return rc;
    to->hash = from->hash;
    to->score = from->score;
    to->gflops = from->gflops;
    if (!from->ok || !from->plain || !from->rows)
        return KILN_OK; /* to be evaluated again */
    size_t nb = sizeof(float) * (size_t)(from->nrows ? from->nrows : 1) * TUNE_FEAT_LEN;
    to->plain = strdup(from->plain);
    to->rows = malloc(nb);
    if (!to->plain || !to->rows) {
        search_cand_fini(to);
        return KILN_ENOMEM;
    }
    memcpy(to->rows, from->rows, nb);
    to->nrows = from->nrows;
    to->ok = true;
    return KILN_OK;
}

uint64_t search_hash_text(const char *plain)
{
    uint64_t h[2];
    /* the same canonical form as tune_trace_hash: hash that hex's bits */
    char hex[TUNE_HASH_HEX];
    tune_trace_hash(plain, hex);
    h[0] =
        strtoull((char[17]){hex[0], hex[1], hex[2], hex[3], hex[4], hex[5], hex[6], hex[7], hex[8],
                            hex[9], hex[10], hex[11], hex[12], hex[13], hex[14], hex[15], 0},
                 NULL, 16);
    return h[0] ? h[0] : 1;
}

/* Scoring lowers thousands of candidates a second and compiles none of
 * them: release builds skip the verifier there (a quarter of lowering,
 * a tenth of scoring); what gets measured is lowered again, verified, by
 * the worker. */
#ifdef NDEBUG
enum { SCORE_VERIFY = 0 };
#else
enum { SCORE_VERIFY = 1 };
#endif

/* Applies, prints, hashes, lowers and featurises one candidate (not
 * again: a full copy of an evaluated one keeps its results). */
static void evaluate_one(const Program *p, SearchCand *c, uint64_t seed)
{
    if (c->ok && c->plain && c->rows)
        return;
    c->ok = false;
    free(c->rows);
    free(c->plain);
    c->rows = NULL;
    c->plain = NULL;
    c->nrows = 0;
    uint64_t rng = seed ? seed : 1;
    Schedule *s = sched_new(p);
    if (!s)
        return;
    kiln_error e;
    kiln_error_clear(&e);
    if (trace_apply(c->space, s, c->dec, c->active, &rng, &e) == KILN_OK) {
        c->plain = sched_to_text(s);
        Arena *a = arena_new();
        LFunc *f = NULL;
        if (c->plain && a && lower_schedule_ex(s, a, NULL, SCORE_VERIFY, &f, &e) == KILN_OK) {
            c->hash = search_hash_text(c->plain);
            int n = tune_count_stores(f);
            c->rows = malloc(sizeof(float) * (size_t)(n ? n : 1) * TUNE_FEAT_LEN);
            if (c->rows && tune_features(f, c->rows, n, &c->nrows, &e) == KILN_OK)
                c->ok = true;
        }
        arena_free(a);
    }
    sched_free(s);
}

typedef struct {
    const Program *p;
    SearchCand *c;
    const uint64_t *seeds;
    int n;
    int next;
    pthread_mutex_t mu;
} EvalJob;

static void *eval_thread(void *arg)
{
    EvalJob *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->next;
        j->next += 8;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n)
            return NULL;
        for (int k = i; k < i + 8 && k < j->n; k++)
            evaluate_one(j->p, &j->c[k], j->seeds[k]);
    }
}

int search_evaluate(const Program *p, SearchCand *c, int n, int threads, uint64_t *rng)
{
    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    if (!seeds)
        return KILN_ENOMEM;
    for (int i = 0; i < n; i++)
        seeds[i] = ir_rand(rng) | 1;
    EvalJob j = {p, c, seeds, n, 0, PTHREAD_MUTEX_INITIALIZER};
    if (threads < 1)
        threads = 1;
    if (threads > 16)
        threads = 16;
    pthread_t th[16];
    int started = 0;
    for (int t = 1; t < threads && n > 16; t++)
        if (pthread_create(&th[started], NULL, eval_thread, &j) == 0)
            started++;
    eval_thread(&j);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    free(seeds);
    return KILN_OK;
}

int search_predict(kiln_cost_model *m, SearchCand *c, int n, kiln_error *e)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += c[i].ok ? c[i].nrows : 0;
    float *rows = malloc(sizeof(float) * (size_t)(total ? total : 1) * TUNE_FEAT_LEN);
    int *counts = malloc(sizeof(int) * (size_t)(n ? n : 1));
    double *scores = malloc(sizeof(double) * (size_t)(n ? n : 1));
    int rc = KILN_ENOMEM;
    if (rows && counts && scores) {
        int64_t at = 0;
        for (int i = 0; i < n; i++) {
            counts[i] = c[i].ok ? c[i].nrows : 0;
            if (counts[i])
                memcpy(rows + at * TUNE_FEAT_LEN, c[i].rows,
                       sizeof(float) * (size_t)counts[i] * TUNE_FEAT_LEN);
            at += counts[i];
        }
        rc = kiln_cost_model_predict(m, rows, counts, n, TUNE_FEAT_LEN, scores, e);
        for (int i = 0; i < n && !rc; i++)
            c[i].score = c[i].ok ? scores[i] : -1e300;
    } else
        ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    free(rows);
    free(counts);
    free(scores);
    return rc;
}

/* ------------------------------------------------------------ hash set */
bool hset_has(const HashSet *h, uint64_t k)
{
    if (!h->cap)
        return false;
    for (size_t i = k & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->v[i] == k)
            return true;
        if (!h->v[i])
            return false;
    }
}

bool hset_add(HashSet *h, uint64_t k)
{
    if (!k)
        k = 1;
    if ((h->n + 1) * 2 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        uint64_t *v = calloc(cap, sizeof(uint64_t));
        if (!v)
            return false;
        for (size_t i = 0; i < h->cap; i++)
            if (h->v[i])
                for (size_t j = h->v[i] & (cap - 1);; j = (j + 1) & (cap - 1))
                    if (!v[j]) {
                        v[j] = h->v[i];
                        break;
                    }
        free(h->v);
        h->v = v;
        h->cap = cap;
    }
    for (size_t i = k & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->v[i] == k)
            return false;
        if (!h->v[i]) {
            h->v[i] = k;
            h->n++;
            return true;
        }
    }
}

void hset_free(HashSet *h)
{
    free(h->v);
    memset(h, 0, sizeof *h);
}
