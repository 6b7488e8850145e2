/* tests/test_tune_measure.c: the isolated measurement worker
 * (tune/measure.c).
 *
 * 1. protocol: request/reply/phase encode-decode round trips, every
 *    truncation and trailing garbage rejected, frames over a pipe (large,
 *    bad magic, oversized, timeout, EOF, EPIPE without SIGPIPE);
 * 2. process logic with a fake work function: replies pass through,
 *    crashes (SIGSEGV, SIGABRT, exit) become CRASH with the signal's name
 *    and a fresh worker answers the next request, hangs become TIMEOUT
 *    within timeout + slack, the reference phase gets its own timeout, a
 *    worker that died while idle is replaced transparently, workers do
 *    not hold each other's pipes;
 * 3. the real worker on a small matmul parsed from YAML: compile, verify
 *    against the interpreter (reference computed once per worker
 *    process), time; schedule errors; injected crash and hang.
 * Throughout: no zombie children and no leaked fds. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "tune/measure.h"

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static bool no_children(void)
{
    int st;
    return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}

static bool pid_gone(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == -1 && errno == ESRCH;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ============================================================ protocol */
static void test_protocol(void)
{
    TuneMeasureRequest rq, rq2;
    memset(&rq, 0, sizeof rq);
    rq.id = 0xdeadbeefcafef00dull;
    rq.trace = "C.io, C.ii = split(C.i, 32)\n# comment\nparallel(C.io)\n";
    rq.opt.min_time_ms = 12.5;
    rq.opt.repeats = 7;
    rq.opt.verify = 1;
    rq.opt.threads = 3;
    rq.opt.seed = 4242;
    rq.opt.timeout_ms = 1234.5;
    rq.opt.ref_timeout_ms = 99999;
    TuneBytes b = {0};
    CHECK(tune_encode_request(&rq, &b) == KILN_OK);
    CHECK(tune_decode_request(b.p, b.len, &rq2) == KILN_OK);
    CHECK(rq2.id == rq.id && !strcmp(rq2.trace, rq.trace));
    CHECK(rq2.opt.min_time_ms == 12.5 && rq2.opt.repeats == 7 && rq2.opt.verify == 1);
    CHECK(rq2.opt.threads == 3 && rq2.opt.seed == 4242 && rq2.opt.timeout_ms == 1234.5);
    CHECK(rq2.opt.ref_timeout_ms == 99999);
    /* Every truncation, and any trailing byte, is rejected. */
    int bad = 0;
    for (size_t n = 0; n < b.len; n++)
        if (tune_decode_request(b.p, n, &rq2) != KILN_EINVAL)
            bad++;
    CHECK(bad == 0);
    CHECK(tune_encode_request(&rq, &b) == KILN_OK); /* appends a second copy */
    CHECK(tune_decode_request(b.p, b.len, &rq2) == KILN_EINVAL);
    /* A NUL inside the string is malformed. */
    b.len = 0;
    CHECK(tune_encode_request(&rq, &b) == KILN_OK);
    b.p[8 + 4 + 3] = 0;
    CHECK(tune_decode_request(b.p, b.len, &rq2) == KILN_EINVAL);

    /* NULL and huge traces. */
    rq.trace = NULL;
    b.len = 0;
    CHECK(tune_encode_request(&rq, &b) == KILN_OK);
    CHECK(tune_decode_request(b.p, b.len, &rq2) == KILN_OK && rq2.trace && !rq2.trace[0]);
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        huge[i] = (char)('a' + i % 26);
    huge[big] = 0;
    rq.trace = huge;
    b.len = 0;
    CHECK(tune_encode_request(&rq, &b) == KILN_OK);
    CHECK(tune_decode_request(b.p, b.len, &rq2) == KILN_OK && strlen(rq2.trace) == big);
    CHECK(rq2.trace && !memcmp(rq2.trace, huge, big));

    /* Replies: odd doubles survive bit for bit. */
    TuneMeasureReply rp, rp2;
    memset(&rp, 0, sizeof rp);
    rp.id = 77;
    rp.status = TUNE_MEASURE_VERIFY_FAILED;
    rp.compile_ms = 31.25;
    rp.median_ms = INFINITY;
    rp.gflops = -0.0;
    rp.max_abs_err = NAN;
    rp.max_rel_err = 1e-300;
    rp.verified = 1;
    rp.threads = 16;
    rp.ntimes = TUNE_MAX_REPEATS;
    for (int i = 0; i < TUNE_MAX_REPEATS; i++)
        rp.times_ms[i] = 0.001 * (i + 1);
    memset(rp.message, 'm', sizeof rp.message - 1);
    rp.message[sizeof rp.message - 1] = 0;
    b.len = 0;
    CHECK(tune_encode_reply(&rp, &b) == KILN_OK);
    CHECK(tune_decode_reply(b.p, b.len, &rp2) == KILN_OK);
    CHECK(rp2.id == 77 && rp2.status == TUNE_MEASURE_VERIFY_FAILED && rp2.compile_ms == 31.25);
    CHECK(isinf(rp2.median_ms) && rp2.gflops == 0 && signbit(rp2.gflops));
    CHECK(isnan(rp2.max_abs_err) && rp2.max_rel_err == 1e-300);
    CHECK(rp2.verified == 1 && rp2.threads == 16 && rp2.ntimes == TUNE_MAX_REPEATS);
    CHECK(!memcmp(rp2.times_ms, rp.times_ms, sizeof rp.times_ms));
    CHECK(!strcmp(rp2.message, rp.message));
    bad = 0;
    for (size_t n = 0; n < b.len; n++)
        if (tune_decode_reply(b.p, n, &rp2) != KILN_EINVAL)
            bad++;
    CHECK(bad == 0);
    /* Out-of-range status and time count. */
    b.p[8] = 99;
    CHECK(tune_decode_reply(b.p, b.len, &rp2) == KILN_EINVAL);
    rp.ntimes = TUNE_MAX_REPEATS + 1;
    b.len = 0;
    CHECK(tune_encode_reply(&rp, &b) == KILN_EINVAL);
    rp.ntimes = 0;
    rp.message[0] = 0;
    b.len = 0;
    CHECK(tune_encode_reply(&rp, &b) == KILN_OK);
    CHECK(tune_decode_reply(b.p, b.len, &rp2) == KILN_OK && rp2.ntimes == 0 && !rp2.message[0]);

    /* Phases. */
    uint64_t id = 0;
    TunePhase ph = 0;
    b.len = 0;
    CHECK(tune_encode_phase(5, TUNE_PHASE_REFERENCE, &b) == KILN_OK);
    CHECK(tune_decode_phase(b.p, b.len, &id, &ph) == KILN_OK);
    CHECK(id == 5 && ph == TUNE_PHASE_REFERENCE);
    b.p[8] = 9;
    CHECK(tune_decode_phase(b.p, b.len, &id, &ph) == KILN_EINVAL);
    CHECK(!strcmp(tune_measure_status_name(TUNE_MEASURE_TIMEOUT), "timeout"));
    CHECK(!strcmp(tune_measure_status_name((TuneMeasureStatus)42), "unknown"));

    /* Frames over a pipe. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(tune_frame_write(fds[1], 7, "abc", 3) == TUNE_IO_OK);
    CHECK(tune_frame_write(fds[1], 8, "", 0) == TUNE_IO_OK);
    uint32_t kind = 0;
    TuneBytes in = {0};
    CHECK(tune_frame_read(fds[0], tune_now() + 1, &kind, &in) == TUNE_IO_OK);
    CHECK(kind == 7 && in.len == 3 && !memcmp(in.p, "abc", 3));
    CHECK(tune_frame_read(fds[0], 0, &kind, &in) == TUNE_IO_OK && kind == 8 && in.len == 0);
    /* Nothing more: a timeout, on time. */
    double t0 = tune_now();
    CHECK(tune_frame_read(fds[0], t0 + 0.15, &kind, &in) == TUNE_IO_TIMEOUT);
    double dt = tune_now() - t0;
    CHECKF(dt >= 0.14 && dt < 1.0, "timeout took %.3f s", dt);
    /* A frame larger than the pipe, written by another process. */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        _exit(tune_frame_write(fds[1], 9, huge, big) == TUNE_IO_OK ? 0 : 1);
    }
    CHECK(tune_frame_read(fds[0], tune_now() + 10, &kind, &in) == TUNE_IO_OK);
    CHECK(kind == 9 && in.len == big && !memcmp(in.p, huge, big));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Garbage and oversized headers. */
    CHECK(write(fds[1], "NOPE\1\0\0\0\0\0\0\0", 12) == 12);
    CHECK(tune_frame_read(fds[0], tune_now() + 1, &kind, &in) == TUNE_IO_BADFRAME);
    unsigned char hdr[12] = {'K', 'L', 'N', 'M', 2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    CHECK(write(fds[1], hdr, 12) == 12);
    CHECK(tune_frame_read(fds[0], tune_now() + 1, &kind, &in) == TUNE_IO_BADFRAME);
    /* A partial frame then EOF. */
    hdr[8] = 10;
    hdr[9] = hdr[10] = hdr[11] = 0;
    CHECK(write(fds[1], hdr, 12) == 12 && write(fds[1], "12345", 5) == 5);
    close(fds[1]);
    CHECK(tune_frame_read(fds[0], tune_now() + 1, &kind, &in) == TUNE_IO_EOF);
    CHECK(tune_frame_read(fds[0], tune_now() + 1, &kind, &in) == TUNE_IO_EOF);
    close(fds[0]);
    /* Writing to a pipe nobody reads: EPIPE, no SIGPIPE (the test lives). */
    CHECK(pipe(fds) == 0);
    close(fds[0]);
    errno = 0;
    CHECK(tune_frame_write(fds[1], 1, "x", 1) == TUNE_IO_ERROR && errno == EPIPE);
    sigset_t pend;
    sigpending(&pend);
    CHECK(!sigismember(&pend, SIGPIPE));
    close(fds[1]);

    free(huge);
    tune_bytes_free(&b);
    tune_bytes_free(&in);
}

/* ========================================================= fake worker */
typedef struct {
    int calls; /* per worker process (copy-on-write) */
} FakeCtx;

/* Behaviour from the trace's first word; see the cases. */
static void fake_work(void *ctx, TuneWorkerIO *io, const TuneMeasureRequest *rq,
                      TuneMeasureReply *rp)
{
    FakeCtx *c = ctx;
    c->calls++;
    const char *t = rq->trace;
    int arg = 0;
    const char *sp = strchr(t, ' ');
    if (sp)
        arg = atoi(sp + 1);
    if (!strncmp(t, "ok", 2) || !strncmp(t, "sleep", 5)) {
        if (t[0] == 's')
            sleep_ms(arg);
        rp->status = TUNE_MEASURE_OK;
        rp->median_ms = t[0] == 's' ? 1.0 : atof(sp ? sp + 1 : "1");
        rp->ntimes = rq->opt.repeats;
        for (int i = 0; i < rp->ntimes; i++)
            rp->times_ms[i] = rp->median_ms + 0.001 * i;
        rp->compile_ms = 1.5;
        rp->threads = rq->opt.threads;
        rp->gflops = c->calls;
    } else if (!strncmp(t, "echo", 4)) {
        rp->status = TUNE_MEASURE_OK;
        rp->median_ms = 1;
        snprintf(rp->message, sizeof rp->message,
                 "min=%g rep=%d ver=%d thr=%d seed=%u to=%g ref=%g", rq->opt.min_time_ms,
                 rq->opt.repeats, rq->opt.verify, rq->opt.threads, rq->opt.seed, rq->opt.timeout_ms,
                 rq->opt.ref_timeout_ms);
    } else if (!strncmp(t, "verify", 6)) {
        rp->status = TUNE_MEASURE_VERIFY_FAILED;
        rp->max_abs_err = 0.5;
        snprintf(rp->message, sizeof rp->message,
                 "wrong result: C[3] is 1, the interpreter says 2");
    } else if (!strncmp(t, "segv", 4)) {
        volatile uintptr_t addr = 8; /* opaque to the compiler */
        *(volatile int *)addr = 1;   /* a real invalid access */
    } else if (!strncmp(t, "abort", 5)) {
        abort();
    } else if (!strncmp(t, "exit", 4)) {
        _exit(7);
    } else if (!strncmp(t, "garble", 6)) {
        tune_worker_phase(io, (TunePhase)99); /* a phase the parent cannot decode */
        rp->status = TUNE_MEASURE_OK;
    } else if (!strncmp(t, "refcrash", 8)) {
        tune_worker_phase(io, TUNE_PHASE_REFERENCE);
        raise(SIGBUS);
    } else if (!strncmp(t, "slowref", 7)) {
        tune_worker_phase(io, TUNE_PHASE_REFERENCE);
        sleep_ms(arg);
        tune_worker_phase(io, TUNE_PHASE_CANDIDATE);
        rp->status = TUNE_MEASURE_OK;
        rp->median_ms = 2;
    }
    /* anything else: left as the default TUNE_MEASURE_ERROR */
}

static TuneMeasureReply run(TuneWorker *w, const char *trace, const TuneMeasureOptions *o)
{
    static uint64_t next_id = 100;
    TuneMeasureRequest rq;
    memset(&rq, 0, sizeof rq);
    rq.id = next_id++;
    rq.trace = trace;
    rq.opt = *o;
    TuneMeasureReply rp;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = tune_measure(w, &rq, &rp, &e);
    CHECKF(rc == KILN_OK, "%s", e.msg);
    CHECK(rp.id == rq.id);
    return rp;
}

static void test_fake_worker(void)
{
    int fds0 = count_fds();
    FakeCtx ctx = {0};
    TuneWorker *w = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(tune_worker_new(NULL, NULL, NULL, &w, &e) == KILN_EINVAL && !w);
    CHECK(tune_worker_new(NULL, fake_work, &ctx, &w, &e) == KILN_OK && w);
    if (!w)
        return;
    CHECK(count_fds() == fds0 + 2);
    pid_t pid1 = tune_worker_pid(w);
    CHECK(pid1 > 0);
    TuneMeasureOptions o;
    tune_measure_options_default(&o);
    CHECK(o.min_time_ms == 100 && o.repeats == 5 && o.timeout_ms == 30000);
    o.repeats = 3;
    o.threads = 2;
    o.timeout_ms = 5000;

    /* A normal reply passes through; the worker keeps state between
     * requests (same process). */
    TuneMeasureReply r = run(w, "ok 2.5", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.median_ms == 2.5 && r.ntimes == 3);
    CHECK(r.times_ms[2] == 2.5 + 0.002 && r.threads == 2 && r.compile_ms == 1.5);
    CHECK(r.gflops == 1 && !r.message[0]);
    r = run(w, "echo", &o);
    CHECKF(!strcmp(r.message, "min=100 rep=3 ver=0 thr=2 seed=1 to=5000 ref=600000"), "%s",
           r.message);
    TuneMeasureOptions big = o;
    big.repeats = 1000; /* clamped */
    big.min_time_ms = -1;
    r = run(w, "echo", &big);
    CHECKF(strstr(r.message, "min=100 rep=64 ") == r.message, "%s", r.message);
    r = run(w, "ok 1", &o);
    CHECK(r.gflops == 4);
    r = run(w, "verify", &o);
    CHECK(r.status == TUNE_MEASURE_VERIFY_FAILED && strstr(r.message, "C[3]"));
    r = run(w, "unknown", &o);
    CHECK(r.status == TUNE_MEASURE_ERROR);
    CHECK(tune_worker_pid(w) == pid1);
    TuneWorkerStats s;
    tune_worker_stats(w, &s);
    CHECK(s.spawns == 1 && s.crashes == 0 && s.timeouts == 0);

    /* Injected crash: CRASH with the signal's name, a new worker, and the
     * next request is fine in a fresh process. */
    r = run(w, "ok @crash@ 1", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "SIGSEGV") != NULL, "%s", r.message);
    pid_t pid2 = tune_worker_pid(w);
    CHECK(pid2 > 0 && pid2 != pid1 && pid_gone(pid1));
    r = run(w, "ok 1", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.gflops == 1);
    tune_worker_stats(w, &s);
    CHECK(s.spawns == 2 && s.crashes == 1);

    /* Real crashes of the work itself. */
    r = run(w, "segv", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "SIGSEGV") != NULL, "%s", r.message);
    r = run(w, "abort", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "SIGABRT") != NULL, "%s", r.message);
    r = run(w, "exit", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "exited with status 7") != NULL, "%s", r.message);
    r = run(w, "ok @exit@", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "exited with status 3") != NULL, "%s", r.message);
    r = run(w, "ok 3", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.median_ms == 3);
    tune_worker_stats(w, &s);
    CHECK(s.spawns == 6 && s.crashes == 5);

    /* Hang: TIMEOUT within timeout + slack, worker replaced. */
    TuneMeasureOptions quick = o;
    quick.timeout_ms = 300;
    pid_t before = tune_worker_pid(w);
    double t0 = tune_now();
    r = run(w, "@hang@", &quick);
    double dt = tune_now() - t0;
    CHECK(r.status == TUNE_MEASURE_TIMEOUT);
    CHECKF(dt >= 0.29 && dt < 0.3 + 1.0, "hang took %.3f s", dt);
    CHECKF(strstr(r.message, "timed out after 300 ms") != NULL, "%s", r.message);
    CHECK(tune_worker_pid(w) != before && pid_gone(before));
    r = run(w, "ok 1", &quick);
    CHECK(r.status == TUNE_MEASURE_OK);
    /* Slow but in time, then slow past the timeout. */
    r = run(w, "sleep 100", &quick);
    CHECK(r.status == TUNE_MEASURE_OK);
    t0 = tune_now();
    r = run(w, "sleep 5000", &quick);
    dt = tune_now() - t0;
    CHECK(r.status == TUNE_MEASURE_TIMEOUT && dt < 1.3);
    tune_worker_stats(w, &s);
    CHECK(s.timeouts == 2);

    /* The reference phase has its own allowance... */
    TuneMeasureOptions ref = quick;
    ref.ref_timeout_ms = 5000;
    r = run(w, "slowref 600", &ref);
    CHECKF(r.status == TUNE_MEASURE_OK, "%s", r.message);
    tune_worker_stats(w, &s);
    CHECK(s.references == 1);
    /* ...and its own limit. */
    ref.ref_timeout_ms = 200;
    r = run(w, "slowref 3000", &ref);
    CHECK(r.status == TUNE_MEASURE_TIMEOUT);
    CHECKF(strstr(r.message, "reference") != NULL, "%s", r.message);

    /* A garbled message: the worker is replaced, the reply says why. */
    before = tune_worker_pid(w);
    r = run(w, "garble", &o);
    CHECK(r.status == TUNE_MEASURE_ERROR);
    CHECKF(strstr(r.message, "garbled") != NULL, "%s", r.message);
    CHECK(tune_worker_pid(w) != before && pid_gone(before));
    tune_worker_stats(w, &s);
    CHECK(s.garbled == 1);
    /* A crash while computing the reference says so. */
    r = run(w, "refcrash", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    CHECKF(strstr(r.message, "SIGBUS") && strstr(r.message, "reference"), "%s", r.message);
    r = run(w, "ok 1", &o);
    CHECK(r.status == TUNE_MEASURE_OK);

    /* A worker that died while idle is replaced without blaming the next
     * candidate. */
    pid_t idle = tune_worker_pid(w);
    CHECK(kill(idle, SIGKILL) == 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK(waitid(P_PID, (id_t)idle, &si, WEXITED | WNOWAIT) == 0); /* dead, not reaped */
    tune_worker_stats(w, &s);
    int spawns = s.spawns;
    r = run(w, "ok 2", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.median_ms == 2);
    CHECK(pid_gone(idle));
    tune_worker_stats(w, &s);
    CHECK(s.spawns == spawns + 1);
    sigset_t pend;
    sigpending(&pend);
    CHECK(!sigismember(&pend, SIGPIPE));

    /* Several workers: none holds another's pipes, so freeing one is
     * quick (its worker sees EOF at once) and crashes are seen by the
     * right parent. */
    TuneWorker *w2 = NULL, *w3 = NULL;
    CHECK(tune_worker_new(NULL, fake_work, &ctx, &w2, &e) == KILN_OK);
    CHECK(tune_worker_new(NULL, fake_work, &ctx, &w3, &e) == KILN_OK);
    r = run(w2, "segv", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH);
    r = run(w3, "ok 4", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.median_ms == 4);
    pid_t p2 = tune_worker_pid(w2);
    t0 = tune_now();
    tune_worker_free(w2);
    dt = tune_now() - t0;
    CHECKF(dt < 1.0, "freeing a worker took %.3f s", dt);
    CHECK(pid_gone(p2));
    r = run(w3, "ok 5", &o);
    CHECK(r.status == TUNE_MEASURE_OK && r.median_ms == 5);
    tune_worker_free(w3);

    /* Bad arguments. */
    TuneMeasureReply rp;
    CHECK(tune_measure(NULL, NULL, &rp, NULL) == KILN_EINVAL);
    CHECK(tune_measure(w, NULL, &rp, NULL) == KILN_EINVAL);

    pid_t last = tune_worker_pid(w);
    tune_worker_free(w);
    tune_worker_free(NULL);
    CHECK(pid_gone(last));
    CHECK(no_children());
    CHECKF(count_fds() == fds0, "fds %d -> %d", fds0, count_fds());
}

/* ========================================================== real worker */
static const char tiny_yaml[] = "name: tiny_mm\n"
                                "params: {M: 19, N: 40, K: 13}\n"
                                "inputs:\n"
                                "  A: [f32, M, K]\n"
                                "  B: [f32, K, N]\n"
                                "outputs:\n"
                                "  C: [f32, M, N]\n"
                                "compute:\n"
                                "  - C[i, j] += A[i, k] * B[k, j]\n";

static void test_real_worker(void)
{
    int fds0 = count_fds();
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(ir_parse_yaml_string(tiny_yaml, strlen(tiny_yaml), "tiny.yaml", &p, &e) == KILN_OK, "%s",
           e.msg);
    if (!p)
        return;
    TuneWorker *w = NULL;
    CHECKF(tune_worker_new(p, NULL, NULL, &w, &e) == KILN_OK, "%s", e.msg);
    if (!w) {
        ir_program_free(p);
        return;
    }
    TuneMeasureOptions o;
    tune_measure_options_default(&o);
    o.min_time_ms = 1;
    o.repeats = 3;
    o.verify = 1;
    o.threads = 1;
    o.timeout_ms = 60000;

    /* The identity schedule: compiled, verified, timed. */
    TuneMeasureReply r = run(w, "", &o);
    CHECKF(r.status == TUNE_MEASURE_OK, "%s: %s", tune_measure_status_name(r.status), r.message);
    CHECK(r.verified == 1 && r.max_abs_err < 1e-4);
    CHECK(r.ntimes == 3 && r.median_ms > 0 && r.compile_ms > 0 && r.gflops > 0);
    CHECK(r.threads == 1);
    for (int i = 0; i < r.ntimes; i++)
        CHECK(r.times_ms[i] > 0 && r.times_ms[i] < 1000);
    TuneWorkerStats s;
    tune_worker_stats(w, &s);
    CHECK(s.references == 1);

    /* A tiled, vectorised, parallel schedule with non-dividing factors;
     * the reference is reused (computed once per worker process). */
    const char *tiled = "C.io, C.ii = split(C.i, 4)\n"
                        "C.jo, C.jv = split(C.j, 16)\n"
                        "reorder(C.io, C.jo, C.k, C.ii, C.jv)\n"
                        "parallel(C.io)\n"
                        "unroll(C.ii)\n"
                        "vectorize(C.jv)\n";
    TuneMeasureOptions par = o;
    par.threads = 2;
    r = run(w, tiled, &par);
    CHECKF(r.status == TUNE_MEASURE_OK, "%s: %s", tune_measure_status_name(r.status), r.message);
    CHECK(r.verified == 1 && r.threads == 2);
    tune_worker_stats(w, &s);
    CHECK(s.references == 1);

    /* Without verification. */
    TuneMeasureOptions nov = o;
    nov.verify = 0;
    r = run(w, "C.io, C.ii = split(C.i, 8)\n", &nov);
    CHECK(r.status == TUNE_MEASURE_OK && r.verified == 0 && r.median_ms > 0);

    /* A schedule error is a compile error naming the culprit. */
    r = run(w, "C.a, C.b = split(C.nope, 4)\n", &o);
    CHECK(r.status == TUNE_MEASURE_COMPILE_ERROR);
    CHECKF(strstr(r.message, "nope") != NULL, "%s", r.message);
    CHECKF(strstr(r.message, "<trace>:1:") != NULL, "%s", r.message);

    /* Injected crash: the next worker recomputes its reference. */
    r = run(w, "# @crash@\nC.io, C.ii = split(C.i, 4)\n", &o);
    CHECK(r.status == TUNE_MEASURE_CRASH && strstr(r.message, "SIGSEGV"));
    r = run(w, tiled, &o);
    CHECKF(r.status == TUNE_MEASURE_OK && r.verified, "%s", r.message);
    tune_worker_stats(w, &s);
    CHECK(s.references == 2 && s.crashes == 1);

    /* Injected hang. */
    TuneMeasureOptions quick = o;
    quick.timeout_ms = 500;
    double t0 = tune_now();
    r = run(w, "# @hang@\n", &quick);
    CHECK(r.status == TUNE_MEASURE_TIMEOUT && tune_now() - t0 < 2.0);

    /* Another seed: new inputs, new reference. */
    TuneMeasureOptions seeded = o;
    seeded.seed = 77;
    r = run(w, "", &seeded);
    CHECKF(r.status == TUNE_MEASURE_OK && r.verified, "%s", r.message);
    tune_worker_stats(w, &s);
    CHECK(s.references == 3); /* the process after the hang, for the new seed */
    r = run(w, tiled, &seeded);
    CHECK(r.status == TUNE_MEASURE_OK && r.verified);
    tune_worker_stats(w, &s);
    CHECK(s.references == 3);

    pid_t last = tune_worker_pid(w);
    tune_worker_free(w);
    ir_program_free(p);
    CHECK(pid_gone(last));
    CHECK(no_children());
    CHECKF(count_fds() == fds0, "fds %d -> %d", fds0, count_fds());
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* Fault markers for every worker forked from here on. */
    setenv("KILN_TEST_FAULT", "crash:@crash@;hang:@hang@;exit:@exit@", 1);
    test_protocol();
    test_fake_worker();
    test_real_worker();
    return t_done("test_tune_measure");
}
