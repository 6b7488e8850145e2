/* examples/use_matmul.c: a plain C program that links the object file
 * `kiln compile examples/matmul.yaml ... -o matmul.o` wrote, with nothing
 * else of kiln's:   cc [-DMM_SIZE=256] use_matmul.c matmul.o -lm -lpthread
 * It checks a sample of C = A * B against a direct dot product. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "matmul.h"

/* The sizes the kernel was compiled for: examples/matmul.yaml's, unless
 * the build says otherwise (-DMM_SIZE=256 for a kernel compiled with
 * --param M=256 --param N=256 --param K=256). */
#ifndef MM_SIZE
#define MM_SIZE 1024
#endif
enum { M = MM_SIZE, N = MM_SIZE, K = MM_SIZE };

int main(void)
{
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N);
    if (!A || !B || !C)
        return 1;
    for (long i = 0; i < (long)M * K; i++)
        A[i] = (float)((i * 7 % 13) - 6) / 8.0f;
    for (long i = 0; i < (long)K * N; i++)
        B[i] = (float)((i * 5 % 11) - 5) / 8.0f;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (matmul(A, B, C) != 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int bad = 0;
    for (int s = 0; s < 1000; s++) {
        int i = (s * 7919) % M, j = (s * 104729) % N;
        double ref = 0;
        for (int k = 0; k < K; k++)
            ref += (double)A[(long)i * K + k] * B[(long)k * N + j];
        if (fabs(C[(long)i * N + j] - ref) > 1e-3 * (1 + fabs(ref)))
            bad++;
    }
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("use_matmul: %s, first call %.2f ms (%.1f GFLOP/s)\n", bad ? "WRONG" : "OK",
           sec * 1e3, 2.0 * M * N * K / sec / 1e9);
    free(A);
    free(B);
    free(C);
    return bad ? 1 : 0;
}
