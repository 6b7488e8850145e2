/* tune/database.h: the tuning database — an SQLite file of workloads and
 * measured records (layout and guarantees: docs/database.md).
 *
 * A workload is a program on a target: its key is a 128-bit hash of the
 * canonical program text and the target string (CPU name and features),
 * so a record is never reused on another CPU.  A record is one measured
 * (or failed) trace of a workload.  Every record is committed on its own
 * the moment tune_db_add returns: a tuner killed at any point loses
 * nothing that was added, and the file stays consistent (WAL journal).
 *
 * Conventions: every fallible call returns KILN_OK or a KILN_E* code and
 * fills the optional kiln_error; no call aborts on a bad file.  SQLite
 * failures (not a database, corrupt, disk full, locked past the busy
 * timeout) are KILN_EIO, allocation failures KILN_ENOMEM, bad arguments
 * KILN_EINVAL.  Strings and arrays handed out are malloc'd and owned by
 * the caller (free with the matching *_fini / *_free).
 *
 * Thread safety: one TuneDb per thread (SQLite's own locking makes several
 * handles on one file, in one or several processes, safe).  A handle must
 * not be used in a child created by fork(); open a new one there. */
#ifndef KILN_TUNE_DATABASE_H
#define KILN_TUNE_DATABASE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/error.h"

/* Schema version this kiln writes (PRAGMA user_version).  A file with a
 * larger version is refused rather than misread. */
#define TUNE_DB_SCHEMA_VERSION 1
/* Default file name, in the working directory. */
#define TUNE_DB_DEFAULT_PATH "kiln.db"

/* ---------------------------------------------------------------- hashing */

/* Hashes are 128 bits written as 32 lower-case hex digits plus a NUL. */
#define TUNE_HASH_HEX 33

/* A 128-bit non-cryptographic hash of n bytes (hand-written; strong
 * avalanche; stable across platforms and releases: stored hashes depend
 * on it).  out[0] is the high half. */
void tune_hash128(const void *data, size_t n, uint64_t seed, uint64_t out[2]);
/* The workload key: the hash of the canonical program text and the target
 * string (e.g. "sapphirerapids +avx512f,..."), as hex. */
void tune_workload_hash(const char *program, const char *target, char hex[TUNE_HASH_HEX]);
/* The trace key: the hash of the trace text after dropping comments,
 * blank lines and insignificant spaces, so a re-formatted trace is the
 * same trace. */
void tune_trace_hash(const char *trace, char hex[TUNE_HASH_HEX]);

/* ---------------------------------------------------------------- handle */

typedef struct TuneDb TuneDb;

/* Opens (creating if needed) the database at path (NULL: "kiln.db").
 * Creates the schema in an empty file.  Refuses, with KILN_EIO and a
 * message naming the file: a file that is not SQLite or is corrupt, an
 * SQLite file of some other application, and a file whose schema version
 * is newer than TUNE_DB_SCHEMA_VERSION.  *out is NULL on error. */
int tune_db_open(const char *path, TuneDb **out, kiln_error *e);
void tune_db_close(TuneDb *db); /* NULL ok */
/* The file name given to tune_db_open (valid while db is open). */
const char *tune_db_path(const TuneDb *db);
/* PRAGMA integrity_check: KILN_OK when the file is sound, else KILN_EIO
 * with SQLite's first complaint. */
int tune_db_check(TuneDb *db, kiln_error *e);

/* ------------------------------------------------------------- workloads */

/* Returns the id of the workload with this hash, adding it if new.
 * hash: as from tune_workload_hash (NULL: computed from program and
 * target).  name: the program's name (shown by `kiln db list`).  An
 * existing workload with the same hash but different program or target
 * text is a hash collision and reported as KILN_EINVAL. */
int tune_db_workload(TuneDb *db, const char *hash, const char *name, const char *target,
                     const char *program, int64_t *id, kiln_error *e);
/* Looks a workload up without adding it: *id is 0 when there is none. */
int tune_db_find_workload(TuneDb *db, const char *hash, int64_t *id, kiln_error *e);

typedef struct TuneWorkloadInfo {
    int64_t id;
    char *hash, *name, *target;
    int64_t nrecords; /* all records, failed ones included */
    int64_t nfailed;
    double best_ms;     /* fastest successful median; 0 when there is none */
    double best_gflops; /* of that record; 0 when there is none */
    double created;     /* unix time, seconds */
} TuneWorkloadInfo;

/* Every workload, oldest first.  *out (NULL when *n is 0) is freed with
 * tune_workloads_free. */
int tune_db_workloads(TuneDb *db, TuneWorkloadInfo **out, int *n, kiln_error *e);
void tune_workloads_free(TuneWorkloadInfo *w, int n); /* NULL ok */

/* --------------------------------------------------------------- records */

typedef struct TuneRecord {
    int64_t id; /* set by the database; 0 = no record */
    int64_t workload;
    char *trace;                    /* schedule text (replays the schedule exactly) */
    char trace_hash[TUNE_HASH_HEX]; /* tune_db_add fills it when empty */
    float *features;                /* nrows x ncols float32, row-major; NULL when none */
    int nrows, ncols;
    double *times_ms; /* per-call time of each timed repeat */
    int ntimes;
    double median_ms; /* per call; ignored (stored as NULL) when error is set */
    double gflops;
    char *error;    /* NULL: measured fine; else why it failed (crash,
                     * timeout, wrong result, compile error) */
    int verified;   /* 1: matched the reference interpreter */
    int threads;    /* threads the kernel ran with */
    double created; /* unix time, seconds; tune_db_add sets it when 0 */
} TuneRecord;

/* Frees what a record owns (trace, features, times, error) and zeroes it. */
void tune_record_fini(TuneRecord *r);
void tune_records_free(TuneRecord *r, int n); /* fini of each, then free(r); NULL ok */

/* Adds r to its workload (r->workload) and commits at once.  A record for
 * the same trace (same trace_hash) already in the workload is left as it
 * is: *inserted (may be NULL) is then false and *id the existing record's
 * id.  KILN_EINVAL when r has no trace, no workload, or error is NULL but
 * median_ms is not a positive finite number. */
int tune_db_add(TuneDb *db, const TuneRecord *r, int64_t *id, bool *inserted, kiln_error *e);
/* Whether the workload has a record for trace_hash (failed or not). */
int tune_db_has_trace(TuneDb *db, int64_t workload, const char *trace_hash, bool *has,
                      kiln_error *e);
/* Number of records of the workload (0: of all workloads); *failed (may be
 * NULL) counts the failed ones among them. */
int tune_db_count(TuneDb *db, int64_t workload, int64_t *total, int64_t *failed, kiln_error *e);
/* The fastest successful record of the workload (ties: the older one).
 * verified_only: consider only records checked against the interpreter.
 * out->id is 0 when there is none.  Failed records are never returned. */
int tune_db_best(TuneDb *db, int64_t workload, bool verified_only, TuneRecord *out, kiln_error *e);
/* The k fastest successful records, fastest first (seeds for the
 * evolutionary search).  *out is freed with tune_records_free. */
int tune_db_top_k(TuneDb *db, int64_t workload, int k, TuneRecord **out, int *n, kiln_error *e);
/* Every record of the workload (0: all workloads), failed ones included,
 * in the order they were added: what a resumed tuner retrains its cost
 * model on. */
int tune_db_records(TuneDb *db, int64_t workload, TuneRecord **out, int *n, kiln_error *e);

/* Writes the records of the workload (0: all) as JSON lines, one record
 * per line, oldest first: {"workload", "workload_hash", "target", "trace",
 * "trace_hash", "times_ms", "median_ms", "gflops", "error", "verified",
 * "threads", "created"} (median_ms and gflops are null for failures,
 * error is null for successes). */
int tune_db_export(TuneDb *db, int64_t workload, FILE *out, kiln_error *e);
/* Keeps the `keep` fastest successful records of the workload (0: of each
 * workload) and deletes every other record, failed ones included, in one
 * transaction.  *deleted (may be NULL) gets the count.  Pruned traces are
 * no longer known to tune_db_has_trace. */
int tune_db_prune(TuneDb *db, int64_t workload, int keep, int64_t *deleted, kiln_error *e);

#endif
