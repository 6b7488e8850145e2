/* tests/test_e2e_random.c: the correctness net over the whole compiler.
 *
 * For every example in examples/, at reduced sizes chosen so that no tile
 * divides evenly, it JIT-compiles the default schedule, the example's hand
 * schedule, and many random valid schedules (fixed seed), runs each on
 * random inputs and compares every output with the reference interpreter.
 * Each random schedule also round-trips through its text form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "runtime/runtime.h"
#include "testlib.h"
#include "tune/tune.h"

typedef struct Example {
    const char *name;
    const char *params; /* "NAME=value ..." overriding the file's */
} Example;

static const Example examples[] = {
    {"matmul", "M=23 N=41 K=19"},
    {"matmul_bias_relu", "M=17 N=35 K=13"},
    {"batch_matmul", "H=3 M=9 N=20 K=7"},
    {"conv2d", "N=1 C=3 K=5 H=9 W=11"},
    {"depthwise_conv", "N=2 C=3 H=10 W=13"},
    {"blur", "H=13 W=21 OH=11 OW=19"},
    {"softmax", "M=7 N=33"},
    {"layernorm", "M=5 N=37"},
    {"transpose", "M=19 N=27"},
};
enum { NEXAMPLES = sizeof examples / sizeof examples[0] };

static int nparsed(const char *spec, const char **names, int64_t *vals, char *store)
{
    int n = 0;
    strcpy(store, spec);
    for (char *tok = strtok(store, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        *eq = 0;
        names[n] = tok;
        vals[n++] = atoll(eq + 1);
    }
    return n;
}

/* Compiles and runs one schedule; compares with the reference outputs. */
static int check_schedule(const Program *p, const Schedule *s, const TuneArgs *ref,
                          const char *what)
{
    kiln_error e;
    kiln_error_clear(&e);
    Arena *a;
    LFunc *f;
    char *text = sched_to_text(s);
    int ok = 0;
    CgKernel *k = NULL;
    TuneArgs got;
    memset(&got, 0, sizeof got);
    if (tune_lower(s, &a, &f, NULL, &e) != KILN_OK) {
        fprintf(stderr, "%s: lowering failed: %s\n", what, e.msg);
        goto out;
    }
    int rc = cg_compile(f, &k, &e);
    arena_free(a);
    if (rc != KILN_OK) {
        fprintf(stderr, "%s: codegen failed: %s\n", what, e.msg);
        goto out;
    }
    if (tune_args_alloc(p, 7, &got, &e) != KILN_OK)
        goto out;
    if (cg_kernel_packed(k)(got.bufs) != 0) {
        fprintf(stderr, "%s: kernel returned non-zero\n", what);
        goto out;
    }
    double max_abs, max_rel;
    char msg[256] = "";
    ok = tune_compare(p, &got, ref, &max_abs, &max_rel, msg, sizeof msg);
    if (!ok)
        fprintf(stderr, "%s: %s\n", what, msg);
out:
    if (!ok)
        fprintf(stderr, "---- schedule of %s ----\n%s-------\n", what, text ? text : "?");
    free(text);
    tune_args_free(&got);
    cg_kernel_free(k);
    return ok;
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    int per_example = 60; /* 9 examples x 60 = 540 random schedules */
    if (getenv("KILN_E2E_PER_EXAMPLE"))
        per_example = atoi(getenv("KILN_E2E_PER_EXAMPLE"));
    kiln_rt_set_num_threads(2);
    int total = 0, passed = 0;
    int nmh[4] = {0}; /* random schedules using compute_at, cache_write, cache_read, rfactor */
    uint64_t rng = 0x5eed5eed12345ull;
    for (int x = 0; x < NEXAMPLES; x++) {
        char path[1024], store[256], what[256];
        const char *names[16];
        int64_t vals[16];
        int n = nparsed(examples[x].params, names, vals, store);
        snprintf(path, sizeof path, "%s/examples/%s.yaml", root, examples[x].name);
        kiln_error e;
        kiln_error_clear(&e);
        Program *p = NULL;
        int rc = ir_parse_yaml_file_params(path, n, names, vals, &p, &e);
        CHECKF(rc == KILN_OK, "%s: %s:%d:%d: %s", path, e.file, e.line, e.col, e.msg);
        if (rc)
            continue;

        /* Reference outputs from the interpreter. */
        TuneArgs ref;
        CHECK(tune_args_alloc(p, 7, &ref, &e) == KILN_OK);
        void **bufs = calloc((size_t)p->ntensors, sizeof(void *));
        memcpy(bufs, ref.bufs, sizeof(void *) * (size_t)ref.n);
        CHECK(ir_interpret(p, bufs, &e) == KILN_OK);
        free(bufs);

        /* Default and hand-written schedules. */
        Schedule *d = sched_default(p);
        snprintf(what, sizeof what, "%s default", examples[x].name);
        total++;
        passed += check_schedule(p, d, &ref, what);
        sched_free(d);
        snprintf(path, sizeof path, "%s/examples/%s.sched", root, examples[x].name);
        char *hand = t_read_file(path);
        CHECKF(hand != NULL, "no %s", path);
        if (hand) {
            Schedule *h = sched_new(p);
            kiln_error_clear(&e);
            CHECKF(sched_apply_text(h, hand, path, &e) == KILN_OK, "%s:%d:%d: %s", path, e.line,
                   e.col, e.msg);
            snprintf(what, sizeof what, "%s hand schedule", examples[x].name);
            total++;
            passed += check_schedule(p, h, &ref, what);
            sched_free(h);
            free(hand);
        }

        for (int i = 0; i < per_example; i++) {
            Schedule *s = sched_random(p, &rng);
            CHECK(s != NULL);
            if (!s)
                continue;
            /* Text round trip: print, replay on a fresh schedule, print. */
            char *t1 = sched_to_text(s);
            static const char *const mh[4] = {"compute_at(", "cache_write(", "cache_read(",
                                              "rfactor("};
            for (int m = 0; m < 4; m++)
                nmh[m] += t1 && strstr(t1, mh[m]) != NULL;
            Schedule *r = sched_new(p);
            kiln_error_clear(&e);
            CHECKF(sched_apply_text(r, t1, "<random>", &e) == KILN_OK, "%s\n%s", e.msg, t1);
            char *t2 = sched_to_text(r);
            CHECKF(t1 && t2 && !strcmp(t1, t2), "round trip differs:\n%s\n---\n%s", t1, t2);
            snprintf(what, sizeof what, "%s random #%d", examples[x].name, i);
            total++;
            passed += check_schedule(p, r, &ref, what);
            free(t1);
            free(t2);
            sched_free(r);
            sched_free(s);
        }
        tune_args_free(&ref);
        ir_program_free(p);
    }
    printf("e2e: %d of %d schedules matched the interpreter\n", passed, total);
    printf("e2e: random schedules with compute_at %d, cache_write %d, cache_read %d, rfactor %d\n",
           nmh[0], nmh[1], nmh[2], nmh[3]);
    CHECK(total >= 500 || per_example < 60);
    for (int m = 0; m < 4; m++)
        CHECK(nmh[m] >= 10 || per_example < 60);
    CHECK(passed == total);
    return t_done("test_e2e_random");
}
