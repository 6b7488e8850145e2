/* tune/measure.c: the measurement worker and its message protocol (see
 * measure.h).
 *
 * Invariants: the parent holds exactly the two pipe ends of its current
 * worker and reaps every child it forks (no zombie, no fd outlives a
 * worker); a worker holds only its own two pipe ends (it closes every
 * other inherited fd), so its death is always seen as EOF; the parent
 * never compiles — everything that touches LLVM runs in the worker. */
#include "tune/measure.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "codegen/codegen.h"
#include "runtime/runtime.h"

#define FRAME_MAGIC 0x4d4e4c4bu /* "KLNM" little-endian */
#define FRAME_HEADER 12

static const char *const status_names[] = {"ok",    "compile_error", "verify_failed",
                                           "crash", "timeout",       "error"};

const char *tune_measure_status_name(TuneMeasureStatus s)
{
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "unknown";
}

void tune_measure_options_default(TuneMeasureOptions *o)
{
    memset(o, 0, sizeof *o);
    o->min_time_ms = 100.0;
    o->repeats = 5;
    o->seed = 1;
    o->timeout_ms = 30000.0;
    o->ref_timeout_ms = 600000.0;
}

static void normalize_options(TuneMeasureOptions *o)
{
    if (!(o->min_time_ms > 0))
        o->min_time_ms = 100.0;
    if (o->repeats <= 0)
        o->repeats = 5;
    if (o->repeats > TUNE_MAX_REPEATS)
        o->repeats = TUNE_MAX_REPEATS;
    if (o->threads < 0)
        o->threads = 0;
    if (!o->seed)
        o->seed = 1;
    if (!(o->timeout_ms > 0))
        o->timeout_ms = 30000.0;
    if (!(o->ref_timeout_ms > 0))
        o->ref_timeout_ms = 600000.0;
}

double tune_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ============================================================== encoding */

void tune_bytes_free(TuneBytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int reserve(TuneBytes *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return KILN_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return KILN_ENOMEM;
        cap *= 2;
    }
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return KILN_ENOMEM;
    b->p = p;
    b->cap = cap;
    return KILN_OK;
}

static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writers: an allocation failure sticks in *rc so callers check once. */
static void put_u32(TuneBytes *b, int *rc, uint32_t v)
{
    if (*rc || (*rc = reserve(b, 4)))
        return;
    le32(b->p + b->len, v);
    b->len += 4;
}

static void put_u64(TuneBytes *b, int *rc, uint64_t v)
{
    put_u32(b, rc, (uint32_t)v);
    put_u32(b, rc, (uint32_t)(v >> 32));
}

static void put_f64(TuneBytes *b, int *rc, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(b, rc, v);
}

static void put_str(TuneBytes *b, int *rc, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    if (n > TUNE_MSG_MAX_PAYLOAD) {
        *rc = KILN_EINVAL;
        return;
    }
    put_u32(b, rc, (uint32_t)n);
    if (*rc || (*rc = reserve(b, n)))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Reader: any shortfall or malformed field clears ok. */
typedef struct {
    const unsigned char *p;
    size_t n, off;
    bool ok;
} Rd;

static uint32_t get_u32(Rd *r)
{
    if (!r->ok || r->n - r->off < 4) {
        r->ok = false;
        return 0;
    }
    uint32_t v = get_le32(r->p + r->off);
    r->off += 4;
    return v;
}

static uint64_t get_u64(Rd *r)
{
    uint64_t lo = get_u32(r);
    uint64_t hi = get_u32(r);
    return lo | hi << 32;
}

static double get_f64(Rd *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* A string: length including the NUL, bytes without any other NUL. */
static const char *get_str(Rd *r)
{
    uint32_t n = get_u32(r);
    if (!r->ok || n == 0 || r->n - r->off < n || r->p[r->off + n - 1] != 0 ||
        memchr(r->p + r->off, 0, n - 1) != NULL) {
        r->ok = false;
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    r->off += n;
    return s;
}

/* Decoding succeeded when nothing was short and nothing is left over. */
static int rd_done(const Rd *r)
{
    return r->ok && r->off == r->n ? KILN_OK : KILN_EINVAL;
}

int tune_encode_request(const TuneMeasureRequest *r, TuneBytes *out)
{
    int rc = KILN_OK;
    put_u64(out, &rc, r->id);
    put_str(out, &rc, r->trace);
    put_f64(out, &rc, r->opt.min_time_ms);
    put_u32(out, &rc, (uint32_t)r->opt.repeats);
    put_u32(out, &rc, r->opt.verify ? 1 : 0);
    put_u32(out, &rc, (uint32_t)r->opt.threads);
    put_u32(out, &rc, r->opt.seed);
    put_f64(out, &rc, r->opt.timeout_ms);
    put_f64(out, &rc, r->opt.ref_timeout_ms);
    return rc;
}

int tune_decode_request(const unsigned char *p, size_t n, TuneMeasureRequest *r)
{
    Rd rd = {p, n, 0, true};
    memset(r, 0, sizeof *r);
    r->id = get_u64(&rd);
    r->trace = get_str(&rd);
    r->opt.min_time_ms = get_f64(&rd);
    r->opt.repeats = (int)get_u32(&rd);
    r->opt.verify = (int)get_u32(&rd);
    r->opt.threads = (int)get_u32(&rd);
    r->opt.seed = get_u32(&rd);
    r->opt.timeout_ms = get_f64(&rd);
    r->opt.ref_timeout_ms = get_f64(&rd);
    if (rd.ok && (r->opt.verify > 1 || r->opt.repeats < 0 || r->opt.repeats > TUNE_MAX_REPEATS))
        rd.ok = false;
    return rd_done(&rd);
}

int tune_encode_reply(const TuneMeasureReply *r, TuneBytes *out)
{
    if (r->ntimes < 0 || r->ntimes > TUNE_MAX_REPEATS)
        return KILN_EINVAL;
    int rc = KILN_OK;
    put_u64(out, &rc, r->id);
    put_u32(out, &rc, (uint32_t)r->status);
    put_f64(out, &rc, r->compile_ms);
    put_f64(out, &rc, r->median_ms);
    put_f64(out, &rc, r->gflops);
    put_f64(out, &rc, r->max_abs_err);
    put_f64(out, &rc, r->max_rel_err);
    put_u32(out, &rc, r->verified ? 1 : 0);
    put_u32(out, &rc, (uint32_t)r->threads);
    put_u32(out, &rc, (uint32_t)r->ntimes);
    for (int i = 0; i < r->ntimes; i++)
        put_f64(out, &rc, r->times_ms[i]);
    /* message is a fixed array: make sure it is terminated. */
    char msg[sizeof r->message];
    snprintf(msg, sizeof msg, "%.*s", (int)sizeof msg - 1, r->message);
    put_str(out, &rc, msg);
    return rc;
}

int tune_decode_reply(const unsigned char *p, size_t n, TuneMeasureReply *r)
{
    Rd rd = {p, n, 0, true};
    memset(r, 0, sizeof *r);
    r->id = get_u64(&rd);
    uint32_t st = get_u32(&rd);
    r->compile_ms = get_f64(&rd);
    r->median_ms = get_f64(&rd);
    r->gflops = get_f64(&rd);
    r->max_abs_err = get_f64(&rd);
    r->max_rel_err = get_f64(&rd);
    r->verified = (int)get_u32(&rd);
    r->threads = (int)get_u32(&rd);
    uint32_t nt = get_u32(&rd);
    if (st > TUNE_MEASURE_ERROR || nt > TUNE_MAX_REPEATS)
        rd.ok = false;
    for (uint32_t i = 0; rd.ok && i < nt; i++)
        r->times_ms[i] = get_f64(&rd);
    const char *msg = get_str(&rd);
    int rc = rd_done(&rd);
    if (rc) {
        memset(r, 0, sizeof *r);
        return rc;
    }
    r->status = (TuneMeasureStatus)st;
    r->ntimes = (int)nt;
    snprintf(r->message, sizeof r->message, "%s", msg);
    return KILN_OK;
}

int tune_encode_phase(uint64_t id, TunePhase ph, TuneBytes *out)
{
    int rc = KILN_OK;
    put_u64(out, &rc, id);
    put_u32(out, &rc, (uint32_t)ph);
    return rc;
}

int tune_decode_phase(const unsigned char *p, size_t n, uint64_t *id, TunePhase *ph)
{
    Rd rd = {p, n, 0, true};
    *id = get_u64(&rd);
    uint32_t v = get_u32(&rd);
    if (v != TUNE_PHASE_REFERENCE && v != TUNE_PHASE_CANDIDATE)
        rd.ok = false;
    *ph = (TunePhase)v;
    return rd_done(&rd);
}

/* ================================================================ frames */

static bool write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

TuneIoStatus tune_frame_write(int fd, uint32_t kind, const void *payload, size_t n)
{
    if (n > TUNE_MSG_MAX_PAYLOAD) {
        errno = EMSGSIZE;
        return TUNE_IO_ERROR;
    }
    unsigned char h[FRAME_HEADER];
    le32(h, FRAME_MAGIC);
    le32(h + 4, kind);
    le32(h + 8, (uint32_t)n);
    /* A reader that died must show up as EPIPE, not kill this process:
     * block SIGPIPE for this thread around the write and swallow the one
     * the write raises (unless one was already pending before). */
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    bool ok = write_all(fd, h, sizeof h) && write_all(fd, payload, n);
    int err = errno;
    if (!ok && err == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return ok ? TUNE_IO_OK : TUNE_IO_ERROR;
}

/* Reads exactly n bytes before the deadline. */
static TuneIoStatus read_exact(int fd, double deadline, unsigned char *p, size_t n)
{
    while (n) {
        int ms = -1;
        if (deadline > 0) {
            double left = deadline - tune_now();
            if (left <= 0)
                return TUNE_IO_TIMEOUT;
            ms = (int)ceil(left * 1e3);
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, ms);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return TUNE_IO_ERROR;
        }
        if (r == 0)
            continue; /* the deadline check above decides */
        ssize_t k = read(fd, p, n);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return TUNE_IO_ERROR;
        }
        if (k == 0)
            return TUNE_IO_EOF;
        p += k;
        n -= (size_t)k;
    }
    return TUNE_IO_OK;
}

TuneIoStatus tune_frame_read(int fd, double deadline, uint32_t *kind, TuneBytes *payload)
{
    unsigned char h[FRAME_HEADER];
    payload->len = 0;
    TuneIoStatus st = read_exact(fd, deadline, h, sizeof h);
    if (st)
        return st;
    uint32_t n = get_le32(h + 8);
    if (get_le32(h) != FRAME_MAGIC || n > TUNE_MSG_MAX_PAYLOAD)
        return TUNE_IO_BADFRAME;
    *kind = get_le32(h + 4);
    if (reserve(payload, (size_t)n + 1)) {
        errno = ENOMEM;
        return TUNE_IO_ERROR;
    }
    st = read_exact(fd, deadline, payload->p, n);
    if (st)
        return st;
    payload->len = n;
    return TUNE_IO_OK;
}

/* ================================================================ worker */

struct TuneWorkerIO {
    int fd;
    uint64_t id;
};

struct TuneWorker {
    TuneWorkFn fn;
    void *ctx;
    TuneRealWork real; /* ctx of the real work */
    pid_t pid;         /* 0: no worker running */
    int to, from;      /* request pipe (write end), reply pipe (read end) */
    TuneBytes buf;
    TuneWorkerStats stats;
};

void tune_worker_phase(TuneWorkerIO *io, TunePhase ph)
{
    if (!io)
        return;
    TuneBytes b = {0};
    if (tune_encode_phase(io->id, ph, &b) == KILN_OK)
        tune_frame_write(io->fd, TUNE_MSG_PHASE, b.p, b.len);
    tune_bytes_free(&b);
}

/* KILN_TEST_FAULT directives (see measure.h), checked before any work so
 * tests can make a worker die in well-defined ways. */
static void inject_faults(const char *trace)
{
    const char *spec = getenv("KILN_TEST_FAULT");
    if (!spec || !trace)
        return;
    size_t tlen = strlen(trace);
    while (*spec) {
        size_t len = strcspn(spec, ";");
        const char *colon = memchr(spec, ':', len);
        if (colon) {
            size_t klen = (size_t)(colon - spec), slen = len - klen - 1;
            if (slen && memmem(trace, tlen, colon + 1, slen)) {
                if (klen == 5 && !memcmp(spec, "crash", 5))
                    raise(SIGSEGV);
                else if (klen == 4 && !memcmp(spec, "hang", 4))
                    for (;;)
                        pause();
                else if (klen == 4 && !memcmp(spec, "exit", 4))
                    _exit(3);
            }
        }
        spec += len;
        if (*spec == ';')
            spec++;
    }
}

/* Closes every fd >= 3 except keep[0..n): other workers' pipes and the
 * tuner's files must not stay open in this worker (a pipe end held here
 * would hide another worker's death from the parent). */
static void close_fds_except(const int *keep, int n)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20)
        max = 1 << 20;
    unsigned lo = 3;
    for (int pass = 0; pass <= n; pass++) {
        /* next kept fd above lo, or the end */
        unsigned hi = (unsigned)max;
        for (int i = 0; i < n; i++)
            if (keep[i] >= (int)lo && (unsigned)keep[i] < hi)
                hi = (unsigned)keep[i];
        if (hi > lo) {
#ifdef SYS_close_range
            if (syscall(SYS_close_range, lo, hi - 1, 0) != 0)
#endif
                for (unsigned fd = lo; fd < hi; fd++)
                    close((int)fd);
        }
        if (hi >= (unsigned)max)
            break;
        lo = hi + 1;
    }
}

static _Noreturn void worker_main(TuneWorker *w, int in, int out, pid_t parent)
{
#ifdef __linux__
    /* Die with the tuner even while stuck in a candidate. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
#endif
    /* Own process group: a terminal's Ctrl-C goes to the tuner, which
     * decides; the worker is not killed mid-measurement and blamed. */
    setpgid(0, 0);
    /* Default dispositions: a crashing candidate must kill this process
     * with its signal, whatever handlers the tuner installed. */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL,  SIGFPE, SIGABRT, SIGTRAP, SIGSYS,
                               SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int keep[2] = {in, out};
    close_fds_except(keep, 2);

    TuneBytes req_buf = {0}, rep_buf = {0};
    for (;;) {
        uint32_t kind = 0;
        TuneIoStatus st = tune_frame_read(in, 0, &kind, &req_buf);
        if (st == TUNE_IO_EOF)
            _exit(0); /* the tuner is done with us */
        if (st != TUNE_IO_OK || kind != TUNE_MSG_MEASURE)
            _exit(2);
        TuneMeasureRequest req;
        if (tune_decode_request(req_buf.p, req_buf.len, &req))
            _exit(2);
        TuneMeasureReply rep;
        memset(&rep, 0, sizeof rep);
        rep.id = req.id;
        rep.status = TUNE_MEASURE_ERROR;
        inject_faults(req.trace);
        TuneWorkerIO io = {out, req.id};
        w->fn(w->ctx, &io, &req, &rep);
        rep.id = req.id;
        rep_buf.len = 0;
        if (tune_encode_reply(&rep, &rep_buf) ||
            tune_frame_write(out, TUNE_MSG_REPLY, rep_buf.p, rep_buf.len))
            _exit(2);
    }
}

static int spawn(TuneWorker *w, kiln_error *e)
{
    int req[2], rep[2];
    if (pipe2(req, O_CLOEXEC))
        return ir_error(e, KILN_EIO, NULL, (Loc){0, 0}, "cannot create a pipe for the worker: %s",
                        strerror(errno));
    if (pipe2(rep, O_CLOEXEC)) {
        int err = errno;
        close(req[0]);
        close(req[1]);
        return ir_error(e, KILN_EIO, NULL, (Loc){0, 0}, "cannot create a pipe for the worker: %s",
                        strerror(err));
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(req[0]);
        close(req[1]);
        close(rep[0]);
        close(rep[1]);
        return ir_error(e, KILN_EIO, NULL, (Loc){0, 0}, "cannot start a measurement worker: %s",
                        strerror(err));
    }
    if (pid == 0)
        worker_main(w, req[0], rep[1], parent);
    close(req[0]);
    close(rep[1]);
    w->pid = pid;
    w->to = req[1];
    w->from = rep[0];
    w->stats.spawns++;
    return KILN_OK;
}

static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGILL, "SIGILL"},
                 {SIGFPE, "SIGFPE"},   {SIGABRT, "SIGABRT"}, {SIGKILL, "SIGKILL"},
                 {SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"},   {SIGTRAP, "SIGTRAP"},
                 {SIGSYS, "SIGSYS"},   {SIGPIPE, "SIGPIPE"}, {SIGXCPU, "SIGXCPU"},
                 {SIGHUP, "SIGHUP"},   {SIGALRM, "SIGALRM"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].sig == sig)
            return names[i].name;
    return NULL;
}

/* Waits for the worker to end: up to grace seconds, then SIGKILL.  Fills
 * *status (when non-NULL) with the wait status, or -1 when unknown. */
static void reap(TuneWorker *w, double grace, int *status)
{
    if (status)
        *status = -1;
    if (!w->pid)
        return;
    close(w->to);
    close(w->from);
    w->to = w->from = -1;
    double end = tune_now() + grace;
    bool killed = grace <= 0;
    if (killed)
        kill(w->pid, SIGKILL);
    for (;;) {
        int st = 0;
        pid_t r = waitpid(w->pid, &st, killed ? 0 : WNOHANG);
        if (r == w->pid) {
            if (status)
                *status = st;
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break; /* ECHILD: reaped elsewhere (SIGCHLD ignored) */
        if (!killed && tune_now() >= end) {
            kill(w->pid, SIGKILL);
            killed = true;
            continue;
        }
        struct timespec ts = {0, 1000000}; /* 1 ms */
        nanosleep(&ts, NULL);
    }
    w->pid = 0;
}

static void describe_death(int st, char *msg, size_t n)
{
    if (st == -1)
        snprintf(msg, n, "worker died (exit status unknown)");
    else if (WIFSIGNALED(st)) {
        const char *name = signal_name(WTERMSIG(st));
        if (name)
            snprintf(msg, n, "worker killed by signal %s (%s)", name, strsignal(WTERMSIG(st)));
        else
            snprintf(msg, n, "worker killed by signal %d (%s)", WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
    } else if (WIFEXITED(st))
        snprintf(msg, n, "worker exited with status %d", WEXITSTATUS(st));
    else
        snprintf(msg, n, "worker died (wait status %d)", st);
}

int tune_worker_new(const Program *p, TuneWorkFn fn, void *ctx, TuneWorker **out, kiln_error *e)
{
    if (!out)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "tune_worker_new: out is NULL");
    *out = NULL;
    if (!fn && !p)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "tune_worker_new: the real worker needs a program");
    TuneWorker *w = calloc(1, sizeof *w);
    if (!w)
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    w->to = w->from = -1;
    if (fn) {
        w->fn = fn;
        w->ctx = ctx;
    } else {
        tune_real_work_init(&w->real, p);
        w->fn = tune_real_work;
        w->ctx = &w->real;
    }
    int rc = spawn(w, e);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return KILN_OK;
}

void tune_worker_free(TuneWorker *w)
{
    if (!w)
        return;
    /* Closing the request pipe asks the idle worker to exit. */
    reap(w, 2.0, NULL);
    tune_bytes_free(&w->buf);
    free(w);
}

pid_t tune_worker_pid(const TuneWorker *w)
{
    return w ? w->pid : 0;
}

void tune_worker_stats(const TuneWorker *w, TuneWorkerStats *out)
{
    if (w)
        *out = w->stats;
    else
        memset(out, 0, sizeof *out);
}

/* The worker is gone or useless: reap it, fill rep, start a new one (a
 * failure to start is reported by the next tune_measure).  For a crash
 * the message is how the worker died, followed by `what` (may be NULL);
 * otherwise it is `what`. */
static void replace_worker(TuneWorker *w, double grace, TuneMeasureReply *rep,
                           TuneMeasureStatus status, const char *what)
{
    int st;
    reap(w, grace, &st);
    rep->status = status;
    if (status == TUNE_MEASURE_CRASH) {
        char death[256];
        describe_death(st, death, sizeof death);
        snprintf(rep->message, sizeof rep->message, "%s%s", death, what ? what : "");
        w->stats.crashes++;
    } else {
        snprintf(rep->message, sizeof rep->message, "%s", what);
    }
    spawn(w, NULL);
}

int tune_measure(TuneWorker *w, const TuneMeasureRequest *req, TuneMeasureReply *rep, kiln_error *e)
{
    if (!w || !req || !rep)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0},
                        "tune_measure: worker, request or reply is NULL");
    memset(rep, 0, sizeof *rep);
    rep->id = req->id;
    rep->status = TUNE_MEASURE_ERROR;
    TuneMeasureRequest r = *req;
    if (!r.trace)
        r.trace = "";
    normalize_options(&r.opt);
    w->buf.len = 0;
    if (tune_encode_request(&r, &w->buf))
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory encoding a request");

    /* A worker that died while idle (not this candidate's doing) is
     * replaced and the request sent again, once. */
    bool sent = false;
    for (int attempt = 0; attempt < 2 && !sent; attempt++) {
        if (!w->pid) {
            int rc = spawn(w, e);
            if (rc)
                return rc;
        }
        sent = tune_frame_write(w->to, TUNE_MSG_MEASURE, w->buf.p, w->buf.len) == TUNE_IO_OK;
        if (!sent)
            reap(w, 0, NULL);
    }
    if (!sent)
        return ir_error(e, KILN_EIO, NULL, (Loc){0, 0},
                        "cannot send a request to the measurement worker");

    double deadline = tune_now() + r.opt.timeout_ms * 1e-3;
    bool in_reference = false;
    for (;;) {
        uint32_t kind = 0;
        TuneIoStatus st = tune_frame_read(w->from, deadline, &kind, &w->buf);
        if (st == TUNE_IO_TIMEOUT) {
            w->stats.timeouts++;
            char msg[128];
            if (in_reference)
                snprintf(msg, sizeof msg,
                         "timed out computing the reference outputs after %.0f ms (worker killed)",
                         r.opt.ref_timeout_ms);
            else
                snprintf(msg, sizeof msg, "timed out after %.0f ms (worker killed)",
                         r.opt.timeout_ms);
            replace_worker(w, 0, rep, TUNE_MEASURE_TIMEOUT, msg);
            return KILN_OK;
        }
        if (st == TUNE_IO_EOF) {
            replace_worker(w, 2.0, rep, TUNE_MEASURE_CRASH,
                           in_reference ? " while computing the reference outputs" : NULL);
            return KILN_OK;
        }
        if (st != TUNE_IO_OK)
            break;
        if (kind == TUNE_MSG_PHASE) {
            uint64_t id;
            TunePhase ph;
            if (tune_decode_phase(w->buf.p, w->buf.len, &id, &ph) || id != r.id)
                break;
            in_reference = ph == TUNE_PHASE_REFERENCE;
            if (in_reference) {
                w->stats.references++;
                deadline = tune_now() + r.opt.ref_timeout_ms * 1e-3;
            } else {
                deadline = tune_now() + r.opt.timeout_ms * 1e-3;
            }
            continue;
        }
        if (kind != TUNE_MSG_REPLY)
            break;
        TuneMeasureReply got;
        if (tune_decode_reply(w->buf.p, w->buf.len, &got) || got.id != r.id)
            break;
        *rep = got;
        return KILN_OK;
    }
    w->stats.garbled++;
    replace_worker(w, 0, rep, TUNE_MEASURE_ERROR, "garbled reply from the measurement worker");
    return KILN_OK;
}

/* ============================================================ real work */

void tune_real_work_init(TuneRealWork *w, const Program *p)
{
    memset(w, 0, sizeof *w);
    w->p = p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tune_sort_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

static void fail(TuneMeasureReply *rep, TuneMeasureStatus st, const char *prefix,
                 const kiln_error *e)
{
    char buf[sizeof rep->message];
    rep->status = st;
    snprintf(rep->message, sizeof rep->message, "%s%s", prefix,
             e ? kiln_error_format(e, buf, sizeof buf) : "");
}

/* The arguments for this seed, allocated once per worker process. */
static int ensure_args(TuneRealWork *w, unsigned seed, kiln_error *e)
{
    if (w->have_args && w->seed == seed)
        return KILN_OK;
    if (w->have_args)
        tune_args_free(&w->got);
    if (w->have_ref)
        tune_args_free(&w->want);
    w->have_args = w->have_ref = 0;
    int rc = tune_args_alloc(w->p, seed, &w->got, e);
    if (rc)
        return rc;
    w->seed = seed;
    w->have_args = 1;
    return KILN_OK;
}

/* Reference outputs: the interpreter on the same random inputs, run once
 * per worker process (it is slow); the parent gives it its own timeout. */
static int ensure_reference(TuneRealWork *w, TuneWorkerIO *io, kiln_error *e)
{
    if (w->have_ref)
        return KILN_OK;
    tune_worker_phase(io, TUNE_PHASE_REFERENCE);
    int rc = tune_args_alloc(w->p, w->seed, &w->want, e);
    if (rc)
        return rc;
    void **bufs = calloc((size_t)w->p->ntensors, sizeof(void *));
    if (!bufs) {
        tune_args_free(&w->want);
        return ir_error(e, KILN_ENOMEM, NULL, (Loc){0, 0}, "out of memory");
    }
    memcpy(bufs, w->want.bufs, sizeof(void *) * (size_t)w->want.n);
    rc = ir_interpret(w->p, bufs, e);
    free(bufs);
    if (rc) {
        tune_args_free(&w->want);
        return rc;
    }
    w->have_ref = 1;
    tune_worker_phase(io, TUNE_PHASE_CANDIDATE);
    return KILN_OK;
}

void tune_real_work(void *ctx, TuneWorkerIO *io, const TuneMeasureRequest *req,
                    TuneMeasureReply *rep)
{
    TuneRealWork *w = ctx;
    const Program *p = w->p;
    TuneMeasureOptions o = req->opt;
    normalize_options(&o);
    kiln_error e;
    kiln_error_clear(&e);
    kiln_rt_set_num_threads(o.threads);
    rep->threads = kiln_rt_get_num_threads();

    /* Compile: a fresh schedule, the trace, lowering, LLVM. */
    double t0 = kiln_rt_now();
    Schedule *s = sched_new(p);
    if (!s) {
        rep->status = TUNE_MEASURE_ERROR;
        snprintf(rep->message, sizeof rep->message, "out of memory");
        return;
    }
    if (sched_apply_text(s, req->trace, "<trace>", &e)) {
        sched_free(s);
        fail(rep, TUNE_MEASURE_COMPILE_ERROR, "schedule: ", &e);
        return;
    }
    Arena *a = NULL;
    LFunc *f = NULL;
    int rc = tune_lower(s, &a, &f, NULL, &e);
    sched_free(s);
    if (rc) {
        fail(rep, rc == KILN_ENOMEM ? TUNE_MEASURE_ERROR : TUNE_MEASURE_COMPILE_ERROR,
             "lower: ", &e);
        return;
    }
    CgKernel *k = NULL;
    rc = cg_compile(f, &k, &e);
    arena_free(a);
    if (rc) {
        fail(rep, rc == KILN_ENOMEM ? TUNE_MEASURE_ERROR : TUNE_MEASURE_COMPILE_ERROR,
             "codegen: ", &e);
        return;
    }
    rep->compile_ms = (kiln_rt_now() - t0) * 1e3;
    int (*fn)(void **) = cg_kernel_packed(k);

    if ((rc = ensure_args(w, o.seed, &e))) {
        fail(rep, TUNE_MEASURE_ERROR, "", &e);
        goto done;
    }
    if (o.verify && (rc = ensure_reference(w, io, &e))) {
        fail(rep, TUNE_MEASURE_ERROR, "reference: ", &e);
        goto done;
    }
    /* Inputs as pristine as the reference's (an earlier candidate may
     * have scribbled on them), outputs poisoned with a value no kernel
     * computes by accident, so an unwritten element cannot pass. */
    if (w->have_ref)
        for (int i = 0; i < p->ninputs; i++)
            memcpy(w->got.bufs[i], w->want.bufs[i], w->got.bytes[i]);
    if (o.verify) {
        for (int i = p->ninputs; i < w->got.n; i++)
            memset(w->got.bufs[i], 0x7f, w->got.bytes[i]);
        if (fn(w->got.bufs) != 0) {
            rep->status = TUNE_MEASURE_ERROR;
            snprintf(rep->message, sizeof rep->message, "kernel could not allocate a temporary");
            goto done;
        }
        char msg[256];
        rep->verified = tune_compare(p, &w->got, &w->want, &rep->max_abs_err, &rep->max_rel_err,
                                     msg, sizeof msg);
        if (!rep->verified) {
            rep->status = TUNE_MEASURE_VERIFY_FAILED;
            snprintf(rep->message, sizeof rep->message, "wrong result: %s", msg);
            goto done;
        }
    }

    /* Timing, as kiln_run: a warm-up call, then `repeats` batches, each
     * grown until it lasts min_time_ms; the median per-call time wins. */
    if (fn(w->got.bufs) != 0) {
        rep->status = TUNE_MEASURE_ERROR;
        snprintf(rep->message, sizeof rep->message, "kernel could not allocate a temporary");
        goto done;
    }
    long number = 1;
    for (int r = 0; r < o.repeats; r++) {
        for (;;) {
            double t1 = kiln_rt_now();
            for (long i = 0; i < number; i++)
                fn(w->got.bufs);
            double dt = kiln_rt_now() - t1;
            if (dt * 1e3 >= o.min_time_ms || number > (1L << 30)) {
                rep->times_ms[r] = dt / (double)number * 1e3;
                break;
            }
            long want_n = (long)(o.min_time_ms / 1e3 / (dt / (double)number + 1e-9)) + 1;
            long grown = (long)((double)number * 1.618) + 1;
            number = want_n > grown ? want_n : grown;
        }
    }
    rep->ntimes = o.repeats;
    double sorted[TUNE_MAX_REPEATS];
    memcpy(sorted, rep->times_ms, sizeof(double) * (size_t)o.repeats);
    rep->median_ms = tune_sort_median(sorted, o.repeats);
    rep->gflops = rep->median_ms > 0 ? ir_program_flops(p) / (rep->median_ms * 1e-3) / 1e9 : 0;
    rep->status = TUNE_MEASURE_OK;
    rep->message[0] = 0;
done:
    cg_kernel_free(k);
}
