/* tests/test_mh_api.c: memory-hierarchy primitives through the public C
 * API: compute_at, cache_write (with the epilogue fused into the
 * write-back), cache_read with a layout, rfactor.  Each schedule runs and
 * is verified against the interpreter (non-dividing tiles, halos); its
 * text replays to the same text; `show` prints bound-inferred buffers;
 * misuse fails with KILN_ESCHEDULE and leaves the schedule unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "testlib.h"

static kiln_program *load(const char *root, const char *name, int n, const char *const *names,
                          const long long *vals)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s.yaml", root, name);
    kiln_program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(kiln_program_parse_file_params(path, n, names, vals, &p, &e) == KILN_OK, "%s: %s", path,
           e.msg);
    return p;
}

/* Runs s once, verified; checks the text round trip. */
static void verify(const kiln_program *p, kiln_schedule *s, const char *what)
{
    kiln_run_options o = {1.0, 1, 3, 0};
    kiln_run_result r;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = kiln_run(s, &o, &r, &e);
    CHECKF(rc == KILN_OK && r.verified, "%s: %s", what, e.msg);
    char *t1 = kiln_schedule_to_string(s);
    kiln_schedule *c = kiln_schedule_new(p);
    CHECKF(kiln_schedule_apply(c, t1, what, &e) == KILN_OK, "%s: replay: %s\n%s", what, e.msg, t1);
    char *t2 = kiln_schedule_to_string(c);
    CHECKF(t1 && t2 && !strcmp(t1, t2), "%s: round trip differs:\n%s---\n%s", what, t1, t2);
    kiln_schedule *cl = kiln_schedule_clone(s);
    char *t3 = cl ? kiln_schedule_to_string(cl) : NULL;
    CHECKF(t3 && !strcmp(t1, t3), "%s: clone differs", what);
    free(t1);
    free(t2);
    free(t3);
    kiln_schedule_free(c);
    kiln_schedule_free(cl);
}

static void test_matmul_bias_relu(const char *root)
{
    const char *nm[] = {"M", "N", "K"};
    const long long v[] = {29, 45, 17};
    kiln_program *p = load(root, "matmul_bias_relu", 3, nm, v);
    if (!p)
        return;
    kiln_schedule *s = kiln_schedule_new(p);
    kiln_error e;
    kiln_error_clear(&e);
    const long long f8 = 8, f16 = 16;
    const char *dn[] = {"D.jo", "D.ji"}, *dn2[] = {"D.io", "D.ii"};
    const char *ord[] = {"D.io", "D.jo", "D.ii", "D.ji"};
    const char *ln[] = {"Cacc.jo", "Cacc.jv"};
    const char *lord[] = {"Cacc.k", "Cacc.i", "Cacc.jo", "Cacc.jv"};
    CHECK(kiln_schedule_cache_write(s, "C", "Cacc", &e) == KILN_OK);
    CHECK(kiln_schedule_inline(s, "C", &e) == KILN_OK);
    CHECK(kiln_schedule_split(s, "D.j", 1, &f16, dn, &e) == KILN_OK);
    CHECK(kiln_schedule_split(s, "D.i", 1, &f8, dn2, &e) == KILN_OK);
    CHECK(kiln_schedule_reorder(s, 4, ord, &e) == KILN_OK);
    CHECK(kiln_schedule_vectorize(s, "D.ji", &e) == KILN_OK);
    CHECK(kiln_schedule_parallel(s, "D.io", &e) == KILN_OK);
    CHECKF(kiln_schedule_compute_at(s, "Cacc", "D.jo", &e) == KILN_OK, "%s", e.msg);
    CHECK(kiln_schedule_split(s, "Cacc.j", 1, &f16, ln, &e) == KILN_OK);
    CHECK(kiln_schedule_reorder(s, 4, lord, &e) == KILN_OK);
    CHECK(kiln_schedule_unroll(s, "Cacc.i", &e) == KILN_OK);
    CHECK(kiln_schedule_vectorize(s, "Cacc.jv", &e) == KILN_OK);
    /* misuse: the schedule stays as it was */
    char *before = kiln_schedule_to_string(s);
    CHECK(kiln_schedule_compute_at(s, "Cacc", "D.io", &e) == KILN_ESCHEDULE);
    CHECK(kiln_schedule_compute_at(s, "A", "D.io", &e) == KILN_ESCHEDULE);
    CHECK(kiln_schedule_cache_write(s, "D", NULL, &e) == KILN_ESCHEDULE);
    CHECK(kiln_schedule_cache_read(s, "bias", "Cacc", NULL, NULL, &e) == KILN_ESCHEDULE);
    CHECK(kiln_schedule_rfactor(s, "D.jo", 2, NULL, &e) == KILN_ESCHEDULE);
    char *after = kiln_schedule_to_string(s);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);
    /* the accumulator is an 8 x 16 tile, allocated inside the tile loop */
    char *ir = NULL;
    CHECK(kiln_show(s, "simplify", &ir, &e) == KILN_OK);
    CHECKF(ir && strstr(ir, "alloc Cacc: f32[8, 16]"), "%s", ir ? ir : "");
    free(ir);
    verify(p, s, "matmul_bias_relu fused");
    kiln_schedule_free(s);
    kiln_program_free(p);
}

static void test_cache_read_rfactor(const char *root)
{
    const char *nm[] = {"M", "N", "K"};
    const long long v[] = {23, 41, 37};
    kiln_program *p = load(root, "matmul", 3, nm, v);
    if (!p)
        return;
    kiln_error e;
    kiln_error_clear(&e);
    /* B packed transposed per k block, computed at C.ko */
    kiln_schedule *s = kiln_schedule_new(p);
    const int lay[] = {1, 0};
    const long long f = 8;
    const char *kn[] = {"C.ko", "C.ki"};
    const char *ord[] = {"C.ko", "C.i", "C.j", "C.ki"};
    CHECK(kiln_schedule_cache_read(s, "B", "C", "Bt", lay, &e) == KILN_OK);
    CHECK(kiln_schedule_split(s, "C.k", 1, &f, kn, &e) == KILN_OK);
    CHECK(kiln_schedule_reorder(s, 4, ord, &e) == KILN_OK);
    CHECKF(kiln_schedule_compute_at(s, "Bt", "C.ko", &e) == KILN_OK, "%s", e.msg);
    char *ir = NULL;
    CHECK(kiln_show(s, "simplify", &ir, &e) == KILN_OK);
    CHECKF(ir && strstr(ir, "alloc Bt: f32[41, 8]"), "%s", ir ? ir : "");
    free(ir);
    verify(p, s, "matmul cache_read");
    kiln_schedule_free(s);

    /* rfactor: partial sums over k blocks in parallel */
    s = kiln_schedule_new(p);
    CHECKF(kiln_schedule_rfactor(s, "C.k", 5, "Cp", &e) == KILN_OK, "%s", e.msg);
    const char *pord[] = {"Cp.ko", "Cp.i", "Cp.j", "Cp.ki"};
    CHECK(kiln_schedule_reorder(s, 4, pord, &e) == KILN_OK);
    CHECK(kiln_schedule_parallel(s, "Cp.ko", &e) == KILN_OK);
    verify(p, s, "matmul rfactor");
    kiln_schedule_free(s);
    kiln_program_free(p);
}

static void test_blur_halo(const char *root)
{
    const char *nm[] = {"H", "W", "OH", "OW"};
    const long long v[] = {19, 37, 17, 35};
    kiln_program *p = load(root, "blur", 4, nm, v);
    if (!p)
        return;
    kiln_schedule *s = kiln_schedule_new(p);
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(kiln_schedule_apply(s,
                              "O.yo, O.yi = split(O.y, 6)\n"
                              "O.xo, O.xv = split(O.x, 16)\n"
                              "reorder(O.yo, O.xo, O.yi, O.xv)\n"
                              "vectorize(O.xv)\n"
                              "parallel(O.yo)\n"
                              "compute_at(T, O.xo)\n"
                              "T.xo, T.xv = split(T.x, 16)\n"
                              "vectorize(T.xv)\n",
                              "blur", &e) == KILN_OK);
    char *ir = NULL;
    CHECK(kiln_show(s, "simplify", &ir, &e) == KILN_OK);
    /* 6 output rows need 8 rows of T (the halo), 16 columns */
    CHECKF(ir && strstr(ir, "alloc T: f32[8, 16]"), "%s", ir ? ir : "");
    free(ir);
    verify(p, s, "blur compute_at");
    kiln_schedule_free(s);
    kiln_program_free(p);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";
    test_matmul_bias_relu(root);
    test_cache_read_rfactor(root);
    test_blur_halo(root);
    return t_done("test_mh_api");
}
