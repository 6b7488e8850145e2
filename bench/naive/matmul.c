/* bench/naive/matmul.c: C = A B, textbook i-k-j order (the inner loop
 * walks rows of B and C contiguously, so clang vectorizes it). */
#include "naive.h"

int naive_matmul(const float *A, const float *B, float *C)
{
    for (int i = 0; i < MM_M; i++) {
        for (int j = 0; j < MM_N; j++)
            C[i * MM_N + j] = 0.0f;
        for (int k = 0; k < MM_K; k++) {
            float a = A[i * MM_K + k];
            for (int j = 0; j < MM_N; j++)
                C[i * MM_N + j] += a * B[k * MM_N + j];
        }
    }
    return 0;
}
