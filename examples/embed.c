/* examples/embed.c: embedding kiln in a C program, with no YAML file.
 *
 * Builds a dense layer  D = max(A B + bias, 0)  through the builder API,
 * schedules it with API calls (register tile, vectors, threads),
 * JIT-compiles it, calls the machine code through its ABI prototype, and
 * checks the result against kiln's reference interpreter.  Prints OK and
 * returns 0, or prints the error and returns 1.  Every object is freed on
 * every path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"

enum { M = 96, N = 64, K = 80 };

/* The ABI of the generated function: one pointer per tensor, inputs then
 * outputs in declaration order. */
typedef int (*dense_fn)(const float *A, const float *B, const float *bias, float *D);

static kiln_program *build_program(kiln_error *e)
{
    kiln_program *p = kiln_program_new("dense_relu", e);
    if (!p)
        return NULL;
    const char *ak[] = {"M", "K"}, *kn[] = {"K", "N"}, *n[] = {"N"}, *mn[] = {"M", "N"};
    if (kiln_program_add_param(p, "M", M, e) || kiln_program_add_param(p, "N", N, e) ||
        kiln_program_add_param(p, "K", K, e) ||
        kiln_program_add_tensor(p, KILN_INPUT, "A", KILN_F32, 2, ak, e) ||
        kiln_program_add_tensor(p, KILN_INPUT, "B", KILN_F32, 2, kn, e) ||
        kiln_program_add_tensor(p, KILN_INPUT, "bias", KILN_F32, 1, n, e) ||
        kiln_program_add_tensor(p, KILN_OUTPUT, "D", KILN_F32, 2, mn, e) ||
        kiln_program_add_tensor(p, KILN_TEMP, "C", KILN_F32, 2, mn, e) ||
        kiln_program_add_stmt(p, "C[i, j] += A[i, k] * B[k, j]", 0, NULL, NULL, e) ||
        kiln_program_add_stmt(p, "D[i, j] = max(C[i, j] + bias[j], 0.0)", 0, NULL, NULL, e) ||
        kiln_program_finish(p, e)) {
        kiln_program_free(p);
        return NULL;
    }
    return p;
}

/* The same register tile as examples/matmul.sched, through API calls:
 * 4 rows x 16 lanes of C stay in registers across the k loop. */
static kiln_schedule *build_schedule(const kiln_program *p, kiln_error *e)
{
    kiln_schedule *s = kiln_schedule_new(p);
    if (!s)
        return NULL;
    const long long f4[] = {4}, f16[] = {16};
    const char *isplit[] = {"C.io", "C.ii"}, *jsplit[] = {"C.jo", "C.jv"};
    const char *order[] = {"C.io", "C.jo", "C.k", "C.ii", "C.jv"};
    const char *dsplit[] = {"D.jo", "D.jv"};
    if (kiln_schedule_split(s, "C.i", 1, f4, isplit, e) ||
        kiln_schedule_split(s, "C.j", 1, f16, jsplit, e) || kiln_schedule_reorder(s, 5, order, e) ||
        kiln_schedule_unroll(s, "C.ii", e) || kiln_schedule_vectorize(s, "C.jv", e) ||
        kiln_schedule_parallel(s, "C.io", e) || kiln_schedule_split(s, "D.j", 1, f16, dsplit, e) ||
        kiln_schedule_vectorize(s, "D.jv", e) || kiln_schedule_parallel(s, "D.i", e)) {
        kiln_schedule_free(s);
        return NULL;
    }
    return s;
}

int main(void)
{
    kiln_error e = {0};
    kiln_program *p = NULL;
    kiln_schedule *s = NULL;
    kiln_kernel *k = NULL;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *bias = malloc(sizeof(float) * N);
    float *D = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    int status = 1;

    if (!A || !B || !bias || !D || !ref) {
        fprintf(stderr, "embed: out of memory\n");
        goto done;
    }
    srand(7);
    for (int i = 0; i < M * K; i++)
        A[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (int i = 0; i < K * N; i++)
        B[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (int i = 0; i < N; i++)
        bias[i] = (float)rand() / RAND_MAX - 0.5f;

    if (!(p = build_program(&e)) || !(s = build_schedule(p, &e)) || kiln_kernel_compile(s, &k, &e))
        goto done;

    char *text = kiln_schedule_to_string(s);
    printf("schedule:\n%s", text ? text : "(unavailable)\n");
    kiln_free(text);

    dense_fn fn = (dense_fn)kiln_kernel_function(k);
    if (fn(A, B, bias, D) != 0) {
        fprintf(stderr, "embed: kernel failed to allocate its temporary\n");
        goto done;
    }
    void *args[] = {A, B, bias, ref};
    if (kiln_program_interpret(p, args, &e))
        goto done;

    double worst = 0;
    for (int i = 0; i < M * N; i++) {
        double d = fabs((double)D[i] - (double)ref[i]) / (1.0 + fabs((double)ref[i]));
        if (d > worst)
            worst = d;
    }
    printf("compiled in %.1f ms; max relative error %.2g\n", kiln_kernel_compile_ms(k), worst);
    if (worst > 1e-5) {
        fprintf(stderr, "embed: result differs from the interpreter\n");
        goto done;
    }
    printf("OK\n");
    status = 0;

done:
    if (e.code) {
        char buf[1024];
        fprintf(stderr, "embed: %s\n", kiln_error_format(&e, buf, sizeof buf));
    }
    kiln_kernel_free(k);
    kiln_schedule_free(s);
    kiln_program_free(p);
    free(A);
    free(B);
    free(bias);
    free(D);
    free(ref);
    return status;
}
