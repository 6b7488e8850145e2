/* tune/tune.h: internal header of tune/ — the public API glue, running and
 * verifying kernels (and, later, the tuner). */
#ifndef KILN_TUNE_H
#define KILN_TUNE_H

#include "ir/ir.h"
#include "kiln/kiln.h"

const Program *tune_program_of(const kiln_program *p);
const Schedule *tune_schedule_of(const kiln_schedule *s);

/* Lowers s completely (or up to stop_after) into a fresh arena. */
int tune_lower(const Schedule *s, Arena **arena, LFunc **f, const char *stop_after,
               kiln_error *e);

/* Reads a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *tune_read_file(const char *path);

/* Argument buffers for one program: 64-byte aligned, inputs random. */
typedef struct TuneArgs {
    int n;            /* inputs + outputs */
    void **bufs;
    size_t *bytes;
} TuneArgs;
int tune_args_alloc(const Program *p, unsigned seed, TuneArgs *a, kiln_error *e);
void tune_args_free(TuneArgs *a);

/* Compares the outputs of got against want (same program); fills the
 * largest absolute and relative errors; returns true when every element is
 * within the dtype's tolerance.  On mismatch, msg (may be NULL) names the
 * first bad element. */
bool tune_compare(const Program *p, const TuneArgs *got, const TuneArgs *want, double *max_abs,
                  double *max_rel, char *msg, size_t msgsize);

#endif
