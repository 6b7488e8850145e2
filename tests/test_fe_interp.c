/* tests/test_fe_interp.c: the reference interpreter against hand-written C
 * loops (bit-exact where the evaluation order is the same), and the shared
 * semantic conventions: floor division, division by zero, saturating casts,
 * lazy select, reduction identities, f32 rounding. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir/ir.h"
#include "testlib.h"

static Program *parse(const char *text)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (ir_parse_yaml_string(text, strlen(text), "t.yaml", &p, &e)) {
        char buf[1024];
        fprintf(stderr, "unexpected error: %s\n", kiln_error_format(&e, buf, sizeof buf));
        return NULL;
    }
    return p;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) % 2000001) / 1000000.0f - 1.0f;
}

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = frand();
}

static int run(const Program *p, void **bufs)
{
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_interpret(p, (void *const *)bufs, &e);
    if (rc)
        fprintf(stderr, "interpret: %s\n", e.msg);
    return rc;
}

static void test_matmul(void)
{
    enum { M = 37, N = 29, K = 45 };
    Program *p = parse("name: mm\nparams: {M: 37, N: 29, K: 45}\n"
                       "inputs: {A: [f32, M, K], B: [f32, K, N], bias: [f32, N]}\n"
                       "outputs: {D: [f32, M, N]}\ntemps: {C: [f32, M, N]}\n"
                       "compute:\n"
                       "  - C[i, j] += A[i, k] * B[k, j]\n"
                       "  - D[i, j] = max(C[i, j] + bias[j], 0.0)\n");
    CHECK(p);
    if (!p)
        return;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N),
          *bias = malloc(sizeof(float) * N), *D = malloc(sizeof(float) * M * N);
    fill(A, M * K);
    fill(B, K * N);
    fill(bias, N);
    void *bufs[] = {A, B, bias, D, NULL};
    CHECK(run(p, bufs) == KILN_OK);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                float prod = A[i * K + k] * B[k * N + j];
                acc = acc + prod;
            }
            float t = acc + bias[j];
            float want = t > 0.0f ? t : 0.0f;
            bad += D[i * N + j] != want;
        }
    CHECKF(bad == 0, "%d matmul elements differ", bad);
    /* a missing argument buffer is an error, not a crash */
    void *missing[] = {A, NULL, bias, D, NULL};
    kiln_error e;
    kiln_error_clear(&e);
    CHECK(ir_interpret(p, (void *const *)missing, &e) == KILN_EINVAL && strstr(e.msg, "'B'"));
    free(A);
    free(B);
    free(bias);
    free(D);
    ir_program_free(p);
}

static void test_conv_padding(void)
{
    enum { C = 3, F = 4, H = 10, R = 3 };
    Program *p =
        parse("name: conv2d\nparams: {C: 3, F: 4, H: 10, R: 3}\n"
              "inputs: {I: [f32, C, H, H], W: [f32, F, C, R, R]}\n"
              "outputs: {O: [f32, F, H, H]}\n"
              "compute:\n"
              "  - O[f, y, x] += select(y + r - 1 >= 0 && y + r - 1 < H && x + s - 1 >= 0 && "
              "x + s - 1 < H, I[c, y + r - 1, x + s - 1], 0.0) * W[f, c, r, s]\n");
    CHECK(p);
    if (!p)
        return;
    /* exactly sized buffers: a read outside them is an ASan error */
    float *I = malloc(sizeof(float) * C * H * H), *W = malloc(sizeof(float) * F * C * R * R),
          *O = malloc(sizeof(float) * F * H * H);
    fill(I, C * H * H);
    fill(W, F * C * R * R);
    void *bufs[] = {I, W, O};
    CHECK(run(p, bufs) == KILN_OK);
    int bad = 0;
    for (int f = 0; f < F; f++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < H; x++) {
                float acc = 0.0f;
                /* the statement's reduction order: r, s, c (first appearance) */
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < R; s++)
                        for (int c = 0; c < C; c++) {
                            int yy = y + r - 1, xx = x + s - 1;
                            float v = yy >= 0 && yy < H && xx >= 0 && xx < H
                                          ? I[(c * H + yy) * H + xx]
                                          : 0.0f;
                            float prod = v * W[((f * C + c) * R + r) * R + s];
                            acc = acc + prod;
                        }
                bad += O[(f * H + y) * H + x] != acc;
            }
    CHECKF(bad == 0, "%d conv elements differ", bad);
    free(I);
    free(W);
    free(O);
    ir_program_free(p);
}

static void test_reductions(void)
{
    Program *p = parse("name: reds\n"
                       "inputs: {A: [f32, 4, 5], Q: [i32, 4, 5]}\n"
                       "outputs: {mx: [f32, 4], mn: [i32, 4], pr: [f32, 4], s: [f64], "
                       "e: [f32, 4], n: [i64, 4]}\n"
                       "compute:\n"
                       "  - mx[i] max= A[i, j]\n"
                       "  - mn[i] min= Q[i, j]\n"
                       "  - pr[i] *= A[i, j]\n"
                       "  - s[] += f64(A[i, j]) * 2\n"
                       "  - {stmt: 'e[i] max= select(r < 0, A[i, 0], -1e30)', ranges: {r: 3}}\n"
                       "  - {stmt: 'n[i] min= i64(Q[i, 0]) + r', ranges: {r: 1}}\n");
    CHECK(p);
    if (!p)
        return;
    float A[20], mx[4], pr[4], e[4];
    int32_t Q[20], mn[4];
    int64_t n[4];
    double s;
    fill(A, 20);
    for (int i = 0; i < 20; i++)
        Q[i] = (int32_t)(i * 7919 % 23) - 11;
    void *bufs[] = {A, Q, mx, mn, pr, &s, e, n};
    CHECK(run(p, bufs) == KILN_OK);
    double ws = 0;
    for (int i = 0; i < 4; i++) {
        float m = -INFINITY, prod = 1.0f;
        int32_t q = INT32_MAX;
        for (int j = 0; j < 5; j++) {
            m = fmaxf(m, A[i * 5 + j]);
            prod = prod * A[i * 5 + j];
            q = Q[i * 5 + j] < q ? Q[i * 5 + j] : q;
            ws = ws + (double)A[i * 5 + j] * 2.0;
        }
        CHECK(mx[i] == m && pr[i] == prod && mn[i] == q);
        CHECK(e[i] == -1e30f);
        CHECK(n[i] == Q[i * 5]);
    }
    CHECK(s == ws);
    ir_program_free(p);
}

static void test_integer_semantics(void)
{
    Program *p = parse("name: ints\n"
                       "inputs: {A: [i32, 8], B: [i32, 8], L: [i64, 8], M: [i64, 8], F: [f64, 8]}\n"
                       "outputs: {D: [i32, 8], R: [i32, 8], D64: [i64, 8], R64: [i64, 8], "
                       "S: [i32, 8], T: [i64, 8], U: [f32, 8], V: [i32, 8]}\n"
                       "compute:\n"
                       "  - D[i] = A[i] / B[i]\n"
                       "  - R[i] = A[i] % B[i]\n"
                       "  - D64[i] = L[i] / M[i]\n"
                       "  - R64[i] = L[i] % M[i]\n"
                       "  - S[i] = i32(F[i])\n"
                       "  - T[i] = i64(F[i])\n"
                       "  - U[i] = f32(L[i])\n"
                       "  - V[i] = A[i] * 2 + i - i32(i / 3) + abs(-A[i])\n");
    CHECK(p);
    if (!p)
        return;
    int32_t A[8] = {7, -7, 7, -7, 5, INT32_MIN, 0, -1};
    int32_t B[8] = {2, 2, -2, -2, 0, -1, 3, 5};
    int64_t L[8] = {7, -7, 7, -7, 5, INT64_MIN, 0, -1};
    int64_t M[8] = {2, 2, -2, -2, 0, -1, 3, 5};
    double F[8] = {1e10, -1e10, NAN, -2.7, 2.7, 2147483647.5, -2147483648.9, 1e300};
    int32_t D[8], R[8], S[8], V[8];
    int64_t D64[8], R64[8], T[8];
    float U[8];
    void *bufs[] = {A, B, L, M, F, D, R, D64, R64, S, T, U, V};
    CHECK(run(p, bufs) == KILN_OK);
    int32_t wd[8] = {3, -4, -4, 3, 0, INT32_MIN, 0, -1};
    int32_t wr[8] = {1, 1, -1, -1, 0, 0, 0, 4};
    for (int i = 0; i < 8; i++) {
        CHECKF(D[i] == wd[i], "D[%d] = %d", i, D[i]);
        CHECKF(R[i] == wr[i], "R[%d] = %d", i, R[i]);
        CHECKF(D64[i] == (i == 5 ? INT64_MIN : wd[i]), "D64[%d]", i);
        CHECKF(R64[i] == wr[i], "R64[%d]", i);
    }
    int32_t ws[8] = {INT32_MAX, INT32_MIN, 0, -2, 2, INT32_MAX, INT32_MIN, INT32_MAX};
    int64_t wt[8] = {10000000000LL, -10000000000LL, 0,        -2, 2,
                     2147483647LL,  -2147483648LL,  INT64_MAX};
    for (int i = 0; i < 8; i++) {
        CHECKF(S[i] == ws[i], "S[%d] = %d", i, S[i]);
        CHECKF(T[i] == wt[i], "T[%d] = %lld", i, (long long)T[i]);
        CHECK(U[i] == (float)L[i]);
        int32_t a = A[i];
        int32_t absa = a == INT32_MIN ? INT32_MIN : (a < 0 ? -a : a);
        int32_t want =
            (int32_t)((uint32_t)a * 2u + (uint32_t)i - (uint32_t)(i / 3) + (uint32_t)absa);
        CHECKF(V[i] == want, "V[%d] = %d, want %d", i, V[i], want);
    }
    ir_program_free(p);
}

static void test_f32_rounding_and_select(void)
{
    Program *p = parse("name: fl\n"
                       "inputs: {A: [f32, 16], G: [i32, 16]}\n"
                       "outputs: {B: [f32, 16], C: [f32, 16], Z: [f32, 16], X: [f64, 16]}\n"
                       "temps: {T: [f32, 16]}\n"
                       "compute:\n"
                       "  - T[i] = A[i] * 0.1 + 1e-8\n"
                       "  - B[i] = select(i > 0, T[i - 1], 0.0) + select(i < 15, T[i + 1], 0.0)\n"
                       "  - C[i] = A[min(max(G[i], 0), 15)] + exp(A[i]) / sqrt(abs(A[i]) + 1) - "
                       "sigmoid(A[i]) * tanh(A[i]) + log(A[i] * A[i] + 1)\n"
                       "  - Z[i] = select(A[i] != A[i], 1.0, min(A[i], 0.25))\n"
                       "  - X[i] = f64(A[i]) * 0.1\n");
    CHECK(p);
    if (!p)
        return;
    float A[16], B[16], C[16], Z[16], T[16];
    double X[16];
    int32_t G[16];
    fill(A, 16);
    for (int i = 0; i < 16; i++)
        G[i] = i * 5 - 20;
    void *bufs[] = {A, G, B, C, Z, X, NULL};
    CHECK(run(p, bufs) == KILN_OK);
    for (int i = 0; i < 16; i++) {
        float t = A[i] * 0.1f;
        T[i] = t + 1e-8f;
    }
    for (int i = 0; i < 16; i++) {
        float l = i > 0 ? T[i - 1] : 0.0f, r = i < 15 ? T[i + 1] : 0.0f;
        CHECKF(B[i] == l + r, "B[%d]", i);
        int g = G[i] < 0 ? 0 : G[i] > 15 ? 15 : G[i];
        float a = A[i];
        float c = A[g] + expf(a) / sqrtf(fabsf(a) + 1.0f) - (1.0f / (1.0f + expf(-a))) * tanhf(a) +
                  logf(a * a + 1.0f);
        CHECKF(C[i] == c, "C[%d] = %.9g want %.9g", i, C[i], c);
        CHECK(Z[i] == fminf(a, 0.25f));
        CHECK(X[i] == (double)a * 0.1); /* 0.1 as f64: not rounded to float */
    }
    ir_program_free(p);
}

static void test_temps_given(void)
{
    /* a caller may pass a temp's buffer to inspect it */
    Program *p =
        parse("name: tg\ninputs: {A: [f64, 5]}\noutputs: {B: [f64, 5]}\n"
              "temps: {T: [f64, 5]}\ncompute: ['T[i] = A[i] * A[i]', 'B[i] = T[i] + 1']\n");
    CHECK(p);
    if (!p)
        return;
    double A[5] = {1, 2, 3, 4, 5}, B[5], T[5];
    void *bufs[] = {A, B, T};
    CHECK(run(p, bufs) == KILN_OK);
    for (int i = 0; i < 5; i++)
        CHECK(T[i] == A[i] * A[i] && B[i] == T[i] + 1);
    ir_program_free(p);
}

static void test_speed(void)
{
    enum { S = 256 };
    Program *p =
        parse("name: big\ninputs: {A: [f32, 256, 256], B: [f32, 256, 256]}\n"
              "outputs: {C: [f32, 256, 256]}\ncompute: ['C[i, j] += A[i, k] * B[k, j]']\n");
    CHECK(p);
    if (!p)
        return;
    float *A = malloc(sizeof(float) * S * S), *B = malloc(sizeof(float) * S * S),
          *C = malloc(sizeof(float) * S * S);
    fill(A, S * S);
    fill(B, S * S);
    void *bufs[] = {A, B, C};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(run(p, bufs) == KILN_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("interpreter: 256^3 matmul in %.0f ms (%.1f ns per multiply-add)\n", ms,
           ms * 1e6 / (S * S * (double)S));
    int bad = 0;
    for (int t = 0; t < 50; t++) {
        int i = (t * 37) % S, j = (t * 101) % S;
        float acc = 0.0f;
        for (int k = 0; k < S; k++) {
            float prod = A[i * S + k] * B[k * S + j];
            acc = acc + prod;
        }
        bad += C[i * S + j] != acc;
    }
    CHECK(bad == 0);
    free(A);
    free(B);
    free(C);
    ir_program_free(p);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_matmul();
    test_conv_padding();
    test_reductions();
    test_integer_semantics();
    test_f32_rounding_and_select();
    test_temps_given();
    test_speed();
    return t_done("test_fe_interp");
}
