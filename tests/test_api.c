/* tests/test_api.c: the public C API end to end — building a program
 * without a file, schedule primitives and their errors, JIT compile and
 * call, the raw function pointer, object emission, show views, kiln_run,
 * and NULL/misuse handling (errors, never crashes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "testlib.h"

static kiln_program *build_saxpy_relu(void)
{
    kiln_error e;
    kiln_error_clear(&e);
    kiln_program *p = kiln_program_new("saxpy_relu", &e);
    CHECK(p != NULL);
    CHECK(kiln_program_add_param(p, "N", 1000, &e) == KILN_OK);
    const char *d[] = {"N"};
    CHECK(kiln_program_add_tensor(p, KILN_INPUT, "X", KILN_F32, 1, d, &e) == KILN_OK);
    CHECK(kiln_program_add_tensor(p, KILN_INPUT, "Y", KILN_F32, 1, d, &e) == KILN_OK);
    CHECK(kiln_program_add_tensor(p, KILN_OUTPUT, "Z", KILN_F32, 1, d, &e) == KILN_OK);
    CHECK(kiln_program_add_tensor(p, KILN_OUTPUT, "s", KILN_F32, 0, NULL, &e) == KILN_OK);
    CHECK(kiln_program_add_tensor(p, KILN_TEMP, "T", KILN_F32, 1, d, &e) == KILN_OK);
    CHECK(kiln_program_add_stmt(p, "T[i] = 2.0 * X[i] + Y[i]", 0, NULL, NULL, &e) == KILN_OK);
    CHECK(kiln_program_add_stmt(p, "Z[i] = max(T[i], 0.0)", 0, NULL, NULL, &e) == KILN_OK);
    CHECK(kiln_program_add_stmt(p, "s[] += Z[i]", 0, NULL, NULL, &e) == KILN_OK);
    CHECKF(kiln_program_finish(p, &e) == KILN_OK, "%s", e.msg);
    return p;
}

static void test_builder_errors(void)
{
    kiln_error e;
    kiln_error_clear(&e);
    kiln_program *p = kiln_program_new("bad", &e);
    const char *d[] = {"8"};
    CHECK(kiln_program_add_tensor(p, KILN_INPUT, "X", KILN_F32, 1, d, &e) == KILN_OK);
    CHECK(kiln_program_add_tensor(p, KILN_OUTPUT, "Z", KILN_F32, 1, d, &e) == KILN_OK);
    kiln_error_clear(&e);
    CHECK(kiln_program_add_stmt(p, "Z[i] = X[i] + Q[i]", 0, NULL, NULL, &e) != KILN_OK);
    CHECKF(strstr(e.msg, "Q") != NULL, "msg: %s", e.msg);
    CHECKF(e.col == 15, "col %d", e.col);
    kiln_error_clear(&e);
    CHECK(kiln_program_add_stmt(p, "Z[i] = X[i", 0, NULL, NULL, &e) != KILN_OK);
    CHECK(e.code == KILN_ESYNTAX);
    kiln_error_clear(&e);
    CHECK(kiln_program_add_tensor(p, KILN_INPUT, "X", KILN_F32, 1, d, &e) != KILN_OK);
    kiln_error_clear(&e);
    CHECK(kiln_program_add_tensor(p, (kiln_tensor_kind)7, "W", KILN_F32, 1, d, &e) == KILN_EINVAL);
    kiln_error_clear(&e);
    CHECK(kiln_program_add_stmt(p, NULL, 0, NULL, NULL, &e) == KILN_EINVAL);
    /* A program whose output is never written cannot be finished. */
    kiln_error_clear(&e);
    CHECK(kiln_program_finish(p, &e) != KILN_OK);
    CHECKF(strstr(e.msg, "Z") != NULL, "msg: %s", e.msg);
    /* NULLs are errors, not crashes. */
    CHECK(kiln_program_new(NULL, NULL) == NULL);
    CHECK(kiln_program_add_param(NULL, "N", 1, NULL) != KILN_OK);
    CHECK(kiln_program_parse_file(NULL, NULL, NULL) != KILN_OK);
    kiln_program *q = (kiln_program *)1;
    CHECK(kiln_program_parse_string("name: [", "x.yaml", &q, &e) != KILN_OK && q == NULL);
    CHECK(kiln_schedule_new(NULL) == NULL);
    CHECK(kiln_kernel_compile(NULL, NULL, NULL) != KILN_OK);
    kiln_program_free(p);
    kiln_program_free(NULL);
    kiln_schedule_free(NULL);
    kiln_kernel_free(NULL);
}

static void test_schedule_and_kernel(const char *tmpdir)
{
    kiln_error e;
    kiln_error_clear(&e);
    kiln_program *p = build_saxpy_relu();
    CHECK(kiln_program_num_args(p) == 4);
    kiln_tensor_info ti;
    CHECK(kiln_program_arg(p, 3, &ti) == KILN_OK && !strcmp(ti.name, "s") && ti.ndim == 0 &&
          ti.numel == 1 && ti.kind == KILN_OUTPUT);
    CHECK(kiln_program_arg(p, 4, &ti) != KILN_OK);
    CHECK(kiln_program_flops(p) >= 3000);

    kiln_schedule *s = kiln_schedule_new(p);
    CHECK(s != NULL);
    const char *names[] = {"Z.io", "Z.iv"};
    long long f16[] = {16};
    CHECK(kiln_schedule_inline(s, "T", &e) == KILN_OK);
    CHECKF(kiln_schedule_split(s, "Z.i", 1, f16, names, &e) == KILN_OK, "%s", e.msg);
    CHECK(kiln_schedule_vectorize(s, "Z.iv", &e) == KILN_OK);
    CHECK(kiln_schedule_parallel(s, "Z.io", &e) == KILN_OK);
    /* errors */
    kiln_error_clear(&e);
    CHECK(kiln_schedule_split(s, "Z.nope", 1, f16, NULL, &e) == KILN_ESCHEDULE);
    kiln_error_clear(&e);
    CHECK(kiln_schedule_parallel(s, "s.i", &e) == KILN_ESCHEDULE); /* a reduction loop */
    kiln_error_clear(&e);
    CHECK(kiln_schedule_inline(s, "X", &e) != KILN_OK);
    kiln_error_clear(&e);
    CHECK(kiln_schedule_split(s, "Z.io", 0, f16, NULL, &e) != KILN_OK);
    kiln_error_clear(&e);
    const char *mixed[] = {"Z.io", "s.i"};
    CHECK(kiln_schedule_reorder(s, 2, mixed, &e) != KILN_OK);

    char *text = kiln_schedule_to_string(s);
    CHECK(text && strstr(text, "split(Z.i, 16)") && strstr(text, "inline(T)"));
    kiln_schedule *s2 = kiln_schedule_new(p);
    kiln_error_clear(&e);
    CHECKF(kiln_schedule_apply(s2, text, "t.sched", &e) == KILN_OK, "%s", e.msg);
    char *text2 = kiln_schedule_to_string(s2);
    CHECK(text2 && !strcmp(text, text2));
    kiln_free(text);
    kiln_free(text2);
    kiln_schedule_free(s2);

    kiln_kernel *k = NULL;
    kiln_error_clear(&e);
    CHECKF(kiln_kernel_compile(s, &k, &e) == KILN_OK, "%s", e.msg);
    if (k) {
        float X[1000], Y[1000], Z[1000], sum = -1, Z2[1000], sum2 = -1;
        for (int i = 0; i < 1000; i++) {
            X[i] = (float)(i % 7) - 3.0f;
            Y[i] = (float)(i % 5) - 1.5f;
        }
        void *args[] = {X, Y, Z, &sum};
        CHECK(kiln_kernel_call(k, args) == 0);
        void *args2[] = {X, Y, Z2, &sum2};
        CHECK(kiln_program_interpret(p, args2, &e) == KILN_OK);
        int bad = 0;
        double ref = 0;
        for (int i = 0; i < 1000; i++) {
            float z = fmaxf(2.0f * X[i] + Y[i], 0.0f);
            ref += z;
            bad += Z[i] != z || Z2[i] != z;
        }
        CHECK(bad == 0);
        CHECKF(fabs(sum - ref) < 1e-2 && fabs(sum2 - ref) < 1e-2, "%g %g %g", sum, sum2, ref);
        int (*fn)(const float *, const float *, float *, float *) =
            (int (*)(const float *, const float *, float *, float *))kiln_kernel_function(k);
        sum = -1;
        CHECK(fn && fn(X, Y, Z, &sum) == 0 && fabs(sum - ref) < 1e-2);
        CHECK(kiln_kernel_compile_ms(k) > 0);
        kiln_kernel_free(k);
    }

    kiln_run_result r;
    kiln_run_options o = {2.0, 3, 7, 0};
    kiln_error_clear(&e);
    CHECKF(kiln_run(s, &o, &r, &e) == KILN_OK, "%s", e.msg);
    CHECK(r.verified && r.median_ms > 0 && r.gflops > 0);

    static const char *views[] = {"schedule", "build", "flatten", "llvm", "llvm-opt", "asm"};
    for (int i = 0; i < 6; i++) {
        char *out = NULL;
        kiln_error_clear(&e);
        CHECKF(kiln_show(s, views[i], &out, &e) == KILN_OK && out && *out, "%s: %s", views[i],
               e.msg);
        kiln_free(out);
    }
    char *out = NULL;
    kiln_error_clear(&e);
    CHECK(kiln_show(s, "nonsense", &out, &e) != KILN_OK && out == NULL);
    const char *const *passes = kiln_pass_names();
    int np = 0;
    while (passes[np])
        np++;
    CHECK(np >= 5);

    char obj[512], hdr[512];
    snprintf(obj, sizeof obj, "%s/api_saxpy.o", tmpdir);
    snprintf(hdr, sizeof hdr, "%s/api_saxpy.h", tmpdir);
    kiln_error_clear(&e);
    CHECKF(kiln_emit_object(s, obj, hdr, &e) == KILN_OK, "%s", e.msg);
    char *h = t_read_file(hdr);
    CHECK(h && strstr(h, "int saxpy_relu(const float *X, const float *Y, float *Z, float *s)"));
    free(h);
    kiln_error_clear(&e);
    CHECK(kiln_emit_object(s, "/nonexistent/dir/x.o", NULL, &e) == KILN_EIO ||
          e.code != KILN_OK);

    kiln_schedule *d = kiln_schedule_default(p);
    kiln_error_clear(&e);
    CHECKF(kiln_run(d, &o, &r, &e) == KILN_OK && r.verified, "%s", e.msg);
    kiln_schedule *c = kiln_schedule_clone(d);
    CHECK(c != NULL);
    kiln_schedule_free(c);
    kiln_schedule_free(d);
    kiln_schedule_free(s);
    kiln_program_free(p);
}

int main(int argc, char **argv)
{
    const char *build = argc > 2 ? argv[2] : ".";
    test_builder_errors();
    test_schedule_and_kernel(build);
    kiln_set_num_threads(1);
    CHECK(kiln_get_num_threads() == 1);
    kiln_set_num_threads(0);
    return t_done("test_api");
}
