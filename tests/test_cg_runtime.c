/* tests/test_cg_runtime.c: the runtime's parallel-for (every iteration
 * exactly once, contiguous chunks, thread-count changes, nested calls run
 * serially, concurrent callers, use after fork), aligned allocation and
 * the clock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "testlib.h"

enum { MAXN = 5000, MAXCALLS = 64 };

typedef struct Cover {
    atomic_int hits[MAXN];
    atomic_int ncalls;
    int64_t b[MAXCALLS], e[MAXCALLS];
} Cover;

static void cover_body(void *ctx, int64_t b, int64_t e)
{
    Cover *c = ctx;
    int k = atomic_fetch_add(&c->ncalls, 1);
    if (k < MAXCALLS)
        c->b[k] = b, c->e[k] = e;
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void test_cover(void)
{
    static const int64_t ns[] = {1, 2, 3, 7, 100, 1001, MAXN};
    static const int threads[] = {1, 2, 3, 8, 0};
    static Cover c;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        kiln_rt_set_num_threads(threads[t]);
        int want = kiln_rt_get_num_threads();
        CHECK(want >= 1 && (threads[t] == 0 || want == threads[t]));
        for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
            int64_t n = ns[q];
            memset(&c, 0, sizeof c);
            kiln_rt_parallel_for(cover_body, &c, n);
            int bad = 0;
            for (int64_t i = 0; i < n; i++)
                bad += atomic_load(&c.hits[i]) != 1;
            int calls = atomic_load(&c.ncalls);
            CHECKF(bad == 0, "n=%lld threads=%d: %d iterations not run exactly once", (long long)n,
                   threads[t], bad);
            /* up to 4 chunks per thread, claimed dynamically (runtime.c) */
            CHECKF(calls >= 1 && calls <= 4 * want && calls <= n, "n=%lld threads=%d: %d chunks",
                   (long long)n, threads[t], calls);
            /* chunks are contiguous ranges that tile [0, n) */
            int64_t starts[MAXCALLS];
            for (int k = 0; k < calls && k < MAXCALLS; k++)
                starts[k] = c.b[k] * 100000 + c.e[k];
            qsort(starts, (size_t)calls, sizeof starts[0], cmp_i64);
            int64_t at = 0;
            for (int k = 0; k < calls; k++) {
                int64_t b = starts[k] / 100000, e = starts[k] % 100000;
                CHECK(b == at && e > b);
                at = e;
            }
            CHECK(at == n);
        }
    }
    kiln_rt_parallel_for(cover_body, &c, 0); /* nothing to do */
    kiln_rt_parallel_for(cover_body, &c, -5);
    kiln_rt_set_num_threads(0);
}

typedef struct Nest {
    atomic_int inner_same_thread, inner_calls, total;
} Nest;

typedef struct InnerCtx {
    Nest *n;
    pthread_t outer;
} InnerCtx;

static void inner_body(void *ctx, int64_t b, int64_t e)
{
    InnerCtx *ic = ctx;
    atomic_fetch_add(&ic->n->inner_calls, 1);
    if (pthread_equal(pthread_self(), ic->outer))
        atomic_fetch_add(&ic->n->inner_same_thread, 1);
    atomic_fetch_add(&ic->n->total, (int)(e - b));
}

static void outer_body(void *ctx, int64_t b, int64_t e)
{
    /* the thread-count knob works from inside a body (no deadlock) */
    kiln_rt_set_num_threads(kiln_rt_get_num_threads());
    for (int64_t i = b; i < e; i++) {
        InnerCtx ic = {ctx, pthread_self()};
        kiln_rt_parallel_for(inner_body, &ic, 10);
    }
}

static void test_nested(void)
{
    kiln_rt_set_num_threads(3);
    Nest n = {0};
    kiln_rt_parallel_for(outer_body, &n, 6);
    CHECK(atomic_load(&n.total) == 60);
    /* one inner call per outer iteration, on the outer iteration's thread */
    CHECK(atomic_load(&n.inner_calls) == 6);
    CHECK(atomic_load(&n.inner_same_thread) == 6);
    kiln_rt_set_num_threads(0);
}

static void sum_body(void *ctx, int64_t b, int64_t e)
{
    atomic_long *s = ctx;
    long acc = 0;
    for (int64_t i = b; i < e; i++)
        acc += i;
    atomic_fetch_add(s, acc);
}

static void *caller_main(void *arg)
{
    long *ok = arg;
    for (int r = 0; r < 200; r++) {
        atomic_long s = 0;
        kiln_rt_parallel_for(sum_body, &s, 1000 + r);
        long n = 1000 + r;
        if (atomic_load(&s) == n * (n - 1) / 2)
            (*ok)++;
    }
    return NULL;
}

static void test_concurrent_callers(void)
{
    enum { T = 4 };
    kiln_rt_set_num_threads(2);
    pthread_t th[T];
    long ok[T] = {0};
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, caller_main, &ok[i]);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++)
        CHECKF(ok[i] == 200, "caller %d: %ld of 200 right", i, ok[i]);
    kiln_rt_set_num_threads(0);
}

static void test_fork(void)
{
    kiln_rt_set_num_threads(3);
    atomic_long s = 0;
    kiln_rt_parallel_for(sum_body, &s, 100); /* the pool exists now */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20); /* a deadlock in the child ends as a failure, not a hang */
        atomic_long cs = 0;
        kiln_rt_parallel_for(sum_body, &cs, 1000);
        _exit(atomic_load(&cs) == 1000L * 999 / 2 ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    kiln_rt_set_num_threads(0);
}

static void test_alloc_and_clock(void)
{
    for (size_t sz = 0; sz < 5000; sz = sz * 3 + 1) {
        void *p = kiln_rt_alloc(sz);
        CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
        if (p)
            memset(p, 1, sz);
        kiln_rt_free(p);
    }
    kiln_rt_free(NULL);
    double t0 = kiln_rt_now();
    usleep(2000);
    double t1 = kiln_rt_now();
    CHECK(t1 - t0 >= 0.0015 && t1 - t0 < 5.0);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_cover();
    test_nested();
    test_concurrent_callers();
    test_fork();
    test_alloc_and_clock();
    /* the workers are still alive here: exit must not hang */
    kiln_rt_set_num_threads(2);
    atomic_long s = 0;
    kiln_rt_parallel_for(sum_body, &s, 10);
    return t_done("test_cg_runtime");
}
