/* tune/measure.h: isolated measurement — a worker process that compiles,
 * verifies and times candidates, and the message protocol it speaks.
 *
 * The tuner never dies with a candidate: every candidate is lowered,
 * JIT-compiled, checked and timed in a worker process forked from the
 * tuner.  A worker that crashes is reported as TUNE_MEASURE_CRASH (with
 * the signal's name), one that overruns its time is killed (SIGKILL) and
 * reported as TUNE_MEASURE_TIMEOUT; either way a fresh worker is forked
 * and the next request runs normally.  The parent never compiles: LLVM
 * only ever runs in workers.  (Fork safety: the parent must not have
 * running OpenMP or LLVM threads; the cost model pins XGBoost to one
 * thread, the runtime's pool re-initialises itself in a child.)
 *
 * Protocol (transport-agnostic: the encode/decode functions work on byte
 * buffers, the frame functions on any stream fd — a pipe now, a socket or
 * an MPI rank's buffer later):
 *   frame   = u32 magic "KLNM", u32 kind, u32 payload length, payload
 *   MEASURE = u64 id, str trace, f64 min_time_ms, u32 repeats,
 *             u32 verify, i32 threads, u32 seed, f64 timeout_ms,
 *             f64 ref_timeout_ms
 *   REPLY   = u64 id, u32 status, f64 compile_ms, f64 median_ms,
 *             f64 gflops, f64 max_abs_err, f64 max_rel_err, u32 verified,
 *             i32 threads, u32 ntimes, f64 times[ntimes], str message
 *   PHASE   = u64 id, u32 phase    (worker -> parent, see TunePhase)
 * All integers little-endian, f64 as its IEEE bit pattern, str = u32
 * length (including a final NUL) + bytes.
 *
 * Test-only fault injection: env KILN_TEST_FAULT, read by the worker for
 * every request, holds directives separated by ';':
 *   crash:SUBSTR   the worker raises SIGSEGV before compiling
 *   hang:SUBSTR    the worker sleeps forever before compiling
 *   exit:SUBSTR    the worker exits with status 3 before compiling
 * each applying when the request's trace text contains SUBSTR.
 *
 * Thread safety: a TuneWorker belongs to one thread, which should live as
 * long as the worker (the worker is killed when the thread that forked it
 * exits: PR_SET_PDEATHSIG).  Several workers may run side by side.  The
 * caller must not ignore SIGCHLD or reap children with waitpid(-1): the
 * worker's exit status is how a crash is named. */
#ifndef KILN_TUNE_MEASURE_H
#define KILN_TUNE_MEASURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ir/ir.h"
#include "tune/tune.h"

#define TUNE_MAX_REPEATS 64

typedef enum {
    TUNE_MEASURE_OK = 0,
    TUNE_MEASURE_COMPILE_ERROR, /* the trace did not apply, or lowering/codegen failed */
    TUNE_MEASURE_VERIFY_FAILED, /* the kernel's result disagrees with the interpreter */
    TUNE_MEASURE_CRASH,         /* the worker died (signal or unexpected exit) */
    TUNE_MEASURE_TIMEOUT,       /* the worker overran timeout_ms and was killed */
    TUNE_MEASURE_ERROR          /* anything else: out of memory, a kernel returning
                                 * non-zero, a garbled reply */
} TuneMeasureStatus;

/* "ok", "compile_error", "verify_failed", "crash", "timeout", "error". */
const char *tune_measure_status_name(TuneMeasureStatus s);

typedef struct TuneMeasureOptions {
    double min_time_ms;    /* each timed repeat lasts at least this (<= 0: 100) */
    int repeats;           /* timed repeats, median kept (<= 0: 5; at most TUNE_MAX_REPEATS) */
    int verify;            /* nonzero: compare with the interpreter before timing */
    int threads;           /* threads for parallel loops (0: all cores) */
    unsigned seed;         /* random inputs (0: 1) */
    double timeout_ms;     /* the whole request (<= 0: 30000) — except computing
                            * the reference outputs, which gets: */
    double ref_timeout_ms; /* the interpreter's first run in a worker (<= 0: 600000) */
} TuneMeasureOptions;

/* Fills o with the defaults above. */
void tune_measure_options_default(TuneMeasureOptions *o);

typedef struct TuneMeasureRequest {
    uint64_t id;       /* echoed in the reply */
    const char *trace; /* schedule text (not owned) */
    TuneMeasureOptions opt;
} TuneMeasureRequest;

typedef struct TuneMeasureReply {
    uint64_t id;
    TuneMeasureStatus status;
    double compile_ms; /* schedule + lower + LLVM, in the worker */
    double median_ms;  /* per call (status OK only) */
    double gflops;
    double max_abs_err, max_rel_err; /* when verified */
    int verified;                    /* 1: matched the interpreter */
    int threads;                     /* threads the kernel ran with */
    int ntimes;
    double times_ms[TUNE_MAX_REPEATS]; /* per-call time of each repeat, in order */
    char message[512];                 /* why it failed ("" when OK) */
} TuneMeasureReply;

/* Phases a worker reports while it works on a request. */
typedef enum {
    TUNE_PHASE_REFERENCE = 1, /* computing reference outputs: ref_timeout_ms applies */
    TUNE_PHASE_CANDIDATE = 2  /* back to the candidate: timeout_ms applies again */
} TunePhase;

/* ----------------------------------------------------------- protocol */

enum {
    TUNE_MSG_MEASURE = 1,
    TUNE_MSG_REPLY = 2,
    TUNE_MSG_PHASE = 3,
    TUNE_MSG_MAX_PAYLOAD = 64 << 20 /* larger frames are refused as garbage */
};

/* A growable byte buffer (malloc'd; free with tune_bytes_free). */
typedef struct TuneBytes {
    unsigned char *p;
    size_t len, cap;
} TuneBytes;
void tune_bytes_free(TuneBytes *b);

/* Encoders append the payload (no frame header) to out; KILN_ENOMEM on
 * allocation failure.  Decoders return KILN_OK or KILN_EINVAL for a
 * truncated or malformed payload; a decoded request's trace points into
 * the payload buffer (valid while it lives). */
int tune_encode_request(const TuneMeasureRequest *r, TuneBytes *out);
int tune_decode_request(const unsigned char *p, size_t n, TuneMeasureRequest *r);
int tune_encode_reply(const TuneMeasureReply *r, TuneBytes *out);
int tune_decode_reply(const unsigned char *p, size_t n, TuneMeasureReply *r);
int tune_encode_phase(uint64_t id, TunePhase ph, TuneBytes *out);
int tune_decode_phase(const unsigned char *p, size_t n, uint64_t *id, TunePhase *ph);

/* Frame I/O over a stream fd (blocking writes; EINTR retried). */
typedef enum {
    TUNE_IO_OK = 0,
    TUNE_IO_EOF,      /* the other end closed (before a complete frame) */
    TUNE_IO_TIMEOUT,  /* deadline passed */
    TUNE_IO_BADFRAME, /* wrong magic or oversized length */
    TUNE_IO_ERROR     /* read/write failed (errno says why; EPIPE: reader gone) */
} TuneIoStatus;

TuneIoStatus tune_frame_write(int fd, uint32_t kind, const void *payload, size_t n);
/* Reads one frame into payload (replacing its contents).  deadline:
 * monotonic seconds (tune_now()), or <= 0 to wait forever. */
TuneIoStatus tune_frame_read(int fd, double deadline, uint32_t *kind, TuneBytes *payload);
/* Monotonic clock, seconds. */
double tune_now(void);
/* Sorts v[0..n) ascending and returns v[n / 2]: the median of timed
 * repeats as every timing in kiln reports it (n > 0). */
double tune_sort_median(double *v, int n);

/* ------------------------------------------------------------- worker */

/* What a worker does with one request, in the worker process.  The reply
 * comes pre-filled with the id and status TUNE_MEASURE_ERROR; the
 * function fills it.  ctx is the pointer given to tune_worker_new (each
 * worker process has its own copy-on-write view of it, so a cache kept
 * there lives as long as that process).  io lets it report phases. */
typedef struct TuneWorkerIO TuneWorkerIO;
typedef void (*TuneWorkFn)(void *ctx, TuneWorkerIO *io, const TuneMeasureRequest *req,
                           TuneMeasureReply *rep);
/* Tells the parent the worker entered a phase (see TunePhase). */
void tune_worker_phase(TuneWorkerIO *io, TunePhase ph);

/* The real work: applies the trace to a fresh schedule of p (sched_new +
 * sched_apply_text), lowers, JIT-compiles, verifies against the
 * interpreter when asked (reference outputs computed once per worker
 * process and cached), then times like kiln_run: one warm-up call,
 * `repeats` batches each grown until it lasts min_time_ms, median kept.
 * ctx must point at a TuneRealWork set up with tune_real_work_init. */
typedef struct TuneRealWork {
    const Program *p;
    /* Worker-process cache, filled lazily in the worker (the parent's copy
     * stays empty, so every new worker starts clean). */
    TuneArgs got;  /* the kernel's arguments */
    TuneArgs want; /* pristine inputs and the interpreter's outputs */
    unsigned seed; /* of got/want */
    int have_args, have_ref;
} TuneRealWork;
void tune_real_work_init(TuneRealWork *w, const Program *p);
void tune_real_work(void *ctx, TuneWorkerIO *io, const TuneMeasureRequest *req,
                    TuneMeasureReply *rep);

typedef struct TuneWorker TuneWorker;

/* Forks a worker.  fn NULL: the real work over program p (p must outlive
 * the worker; the worker reads it through fork); otherwise fn(ctx, ...)
 * runs each request (tests use fakes that crash, hang or reply).  Errors:
 * KILN_EIO when pipes or fork fail. */
int tune_worker_new(const Program *p, TuneWorkFn fn, void *ctx, TuneWorker **out, kiln_error *e);
/* Ends the worker (closes its request pipe, waits briefly, then SIGKILL)
 * and reaps it: no zombie, no fd left.  NULL ok. */
void tune_worker_free(TuneWorker *w);

/* Runs one request in the worker and fills rep.  A crash, hang, garbled
 * reply or failed candidate is a status in rep, and the call still
 * returns KILN_OK; the worker is replaced when it died or was killed.
 * Returns an error only when no worker can be started (KILN_EIO) or on a
 * bad argument (KILN_EINVAL). */
int tune_measure(TuneWorker *w, const TuneMeasureRequest *req, TuneMeasureReply *rep,
                 kiln_error *e);

/* The current worker's pid (0 when none is running). */
pid_t tune_worker_pid(const TuneWorker *w);

typedef struct TuneWorkerStats {
    int spawns;     /* worker processes started (1 + respawns) */
    int crashes;    /* requests that ended in TUNE_MEASURE_CRASH */
    int timeouts;   /* ... in TUNE_MEASURE_TIMEOUT */
    int garbled;    /* replies that could not be decoded (worker replaced) */
    int references; /* times a worker computed reference outputs */
} TuneWorkerStats;
void tune_worker_stats(const TuneWorker *w, TuneWorkerStats *out);

#endif
