/* runtime/runtime.c: the parallel-for, aligned buffers and the clock that
 * JIT-compiled kernels and the measuring process use.
 *
 * The pool is persistent: workers are created on the first parallel loop
 * (or when the thread count changes) and then sleep on a condition
 * variable between loops, after a short spin so back-to-back loops do not
 * pay a wake-up each.  One parallel loop runs at a time (callers are
 * serialised by `call_lock`); a parallel loop started from inside a body
 * runs serially on the calling thread.  Iterations are split in
 * contiguous chunks (up to CHUNKS_PER_THREAD per thread) that the caller
 * and the workers CLAIM from a shared counter: a worker the OS has not
 * scheduled yet (a loaded machine) claims nothing, and the threads that
 * do run take its share instead of waiting for it.  The counter carries
 * the loop's generation in its high half, so a worker that wakes late
 * can never claim a chunk of a later loop.  Workers are joined at exit
 * and forgotten in a forked child (they do not exist there). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

enum { SPIN_ITERS = 20000, MAX_THREADS = 1024, CHUNKS_PER_THREAD = 4 };

typedef struct Pool {
    pthread_mutex_t call_lock; /* one parallel loop at a time */
    pthread_mutex_t m;         /* guards the fields below (with the atomics) */
    pthread_cond_t work_cv, done_cv;
    pthread_t *threads;
    int nworkers;         /* running workers (threads - 1) */
    int built_for;        /* the thread count the workers were created for */
    atomic_int requested; /* kiln_rt_set_num_threads value; <= 0: default */
    /* the current loop */
    kiln_rt_body body;
    void *ctx;
    int64_t n;
    atomic_int nchunks;      /* chunks of this loop */
    unsigned long spawn_gen; /* gen when the workers were created: their start */
    atomic_ulong gen;        /* bumped for every loop; workers wait for a change */
    _Atomic uint64_t claim;  /* (uint32 gen) << 32 | next unclaimed chunk */
    atomic_int done;         /* chunks finished in this loop */
    atomic_bool shutdown;
    bool caller_sleeping; /* the caller waits on done_cv */
} Pool;

static Pool pool = {
    .call_lock = PTHREAD_MUTEX_INITIALIZER,
    .m = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
};

static _Thread_local int in_parallel; /* >0 while this thread runs a body */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int default_threads(void)
{
    const char *env = getenv("KILN_NUM_THREADS");
    if (env) {
        int v = atoi(env);
        if (v > 0)
            return v < MAX_THREADS ? v : MAX_THREADS;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n < MAX_THREADS ? (int)n : MAX_THREADS;
}

static void run_chunk(int c, int nchunks, kiln_rt_body body, void *ctx, int64_t n)
{
    /* Split without overflow for any n below 2^62 and nchunks <= 4096. */
    int64_t q = n / nchunks, r = n % nchunks;
    int64_t b = (int64_t)c * q + (c < r ? c : r);
    int64_t e = b + q + (c < r ? 1 : 0);
    if (b < e) {
        in_parallel++;
        body(ctx, b, e);
        in_parallel--;
    }
}

/* Claims and runs chunks of loop `tag` until none is left; returns how
 * many this thread ran.  The loop's fields are read only after a claim
 * succeeded: the caller cannot move on while a claimed chunk is running,
 * so they still belong to loop `tag`. */
static int claim_chunks(uint32_t tag)
{
    int ran = 0;
    for (;;) {
        uint64_t c = atomic_load_explicit(&pool.claim, memory_order_acquire);
        if ((uint32_t)(c >> 32) != tag)
            return ran;
        int idx = (int)(uint32_t)c;
        /* May already be a later loop's count: then the CAS below fails. */
        int nchunks = atomic_load_explicit(&pool.nchunks, memory_order_relaxed);
        if (idx >= nchunks)
            return ran;
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        run_chunk(idx, nchunks, pool.body, pool.ctx, pool.n);
        ran++;
        if (atomic_fetch_add_explicit(&pool.done, 1, memory_order_acq_rel) + 1 == nchunks) {
            pthread_mutex_lock(&pool.m);
            if (pool.caller_sleeping)
                pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.m);
        }
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    /* Not the current gen: the first loop may already have been posted
     * before this thread got here. */
    unsigned long seen = pool.spawn_gen;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen &&
               !atomic_load(&pool.shutdown) && spins < SPIN_ITERS) {
            cpu_relax();
            spins++;
        }
        if (g == seen && !atomic_load(&pool.shutdown)) {
            pthread_mutex_lock(&pool.m);
            while ((g = atomic_load(&pool.gen)) == seen && !atomic_load(&pool.shutdown))
                pthread_cond_wait(&pool.work_cv, &pool.m);
            pthread_mutex_unlock(&pool.m);
        }
        if (atomic_load(&pool.shutdown))
            return NULL;
        seen = g;
        claim_chunks((uint32_t)g);
    }
}

/* Stops and joins every worker.  Caller holds call_lock. */
static void stop_workers(void)
{
    if (!pool.nworkers)
        return;
    pthread_mutex_lock(&pool.m);
    atomic_store(&pool.shutdown, true);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.m);
    for (int i = 0; i < pool.nworkers; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = 0;
    pool.built_for = 0;
    atomic_store(&pool.shutdown, false);
}

/* Makes the pool hold want-1 workers; returns how many threads loops can
 * use (fewer when thread creation fails).  Caller holds call_lock. */
static int ensure_workers(int want)
{
    /* Compare with the request, not the result: when thread creation
     * failed part way, keep the smaller pool instead of retrying per loop. */
    if (want == pool.built_for)
        return pool.nworkers + 1;
    stop_workers();
    pool.built_for = want;
    if (want <= 1)
        return 1;
    pool.threads = calloc((size_t)want - 1, sizeof(pthread_t));
    if (!pool.threads)
        return 1;
    pool.spawn_gen = atomic_load(&pool.gen);
    for (int i = 0; i < want - 1; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, (void *)(intptr_t)(i + 1)))
            break; /* run with what we have */
        pool.nworkers++;
    }
    if (!pool.nworkers) {
        free(pool.threads);
        pool.threads = NULL;
    }
    return pool.nworkers + 1;
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&pool.call_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&pool.call_lock);
}

/* The child has only the forking thread: forget the workers (their memory
 * is the only thing left of them) and start with fresh locks. */
static void atfork_child(void)
{
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = 0;
    pool.built_for = 0;
    atomic_store(&pool.shutdown, false);
    pthread_mutex_init(&pool.call_lock, NULL);
    pthread_mutex_init(&pool.m, NULL);
    pthread_cond_init(&pool.work_cv, NULL);
    pthread_cond_init(&pool.done_cv, NULL);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Joins the workers at exit so the process never ends with threads
 * blocked on pool state that is being torn down.  If a loop is still
 * running (exit from another thread), leave the workers alone. */
__attribute__((destructor)) static void pool_fini(void)
{
    if (pthread_mutex_trylock(&pool.call_lock) != 0)
        return;
    stop_workers();
    pthread_mutex_unlock(&pool.call_lock);
}

void kiln_rt_parallel_for(kiln_rt_body body, void *ctx, int64_t n)
{
    if (n <= 0)
        return;
    if (in_parallel || n == 1) {
        body(ctx, 0, n);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.call_lock);
    int req = atomic_load(&pool.requested);
    int want = req > 0 ? req : default_threads();
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    int nthreads = ensure_workers(want);
    int64_t nc = (int64_t)nthreads * CHUNKS_PER_THREAD;
    int nchunks = (int)(n < nc ? n : nc);
    if (nthreads <= 1) {
        pthread_mutex_unlock(&pool.call_lock);
        in_parallel++;
        body(ctx, 0, n);
        in_parallel--;
        return;
    }
    pool.body = body;
    pool.ctx = ctx;
    pool.n = n;
    atomic_store_explicit(&pool.nchunks, nchunks, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    uint32_t tag = (uint32_t)(atomic_load(&pool.gen) + 1);
    atomic_store_explicit(&pool.claim, (uint64_t)tag << 32, memory_order_release);
    pthread_mutex_lock(&pool.m);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.m);

    claim_chunks(tag);

    int spins = 0;
    while (atomic_load_explicit(&pool.done, memory_order_acquire) < nchunks &&
           spins < SPIN_ITERS) {
        cpu_relax();
        spins++;
    }
    if (atomic_load(&pool.done) < nchunks) {
        pthread_mutex_lock(&pool.m);
        pool.caller_sleeping = true;
        while (atomic_load(&pool.done) < nchunks)
            pthread_cond_wait(&pool.done_cv, &pool.m);
        pool.caller_sleeping = false;
        pthread_mutex_unlock(&pool.m);
    }
    pthread_mutex_unlock(&pool.call_lock);
}

/* No lock: these may be called from inside a parallel body. */
void kiln_rt_set_num_threads(int n)
{
    atomic_store(&pool.requested, n > MAX_THREADS ? MAX_THREADS : n);
}

int kiln_rt_get_num_threads(void)
{
    int n = atomic_load(&pool.requested);
    return n > 0 ? n : default_threads();
}

void *kiln_rt_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

void kiln_rt_free(void *p)
{
    free(p);
}

double kiln_rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
