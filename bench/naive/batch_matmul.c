/* bench/naive/batch_matmul.c: C[h] = A[h] B[h] for every head h, i-k-j. */
#include "naive.h"

int naive_batch_matmul(const float *A, const float *B, float *C)
{
    for (int h = 0; h < BMM_H; h++) {
        const float *a = A + h * BMM_M * BMM_K;
        const float *b = B + h * BMM_K * BMM_N;
        float *c = C + h * BMM_M * BMM_N;
        for (int i = 0; i < BMM_M; i++) {
            for (int j = 0; j < BMM_N; j++)
                c[i * BMM_N + j] = 0.0f;
            for (int k = 0; k < BMM_K; k++) {
                float av = a[i * BMM_K + k];
                for (int j = 0; j < BMM_N; j++)
                    c[i * BMM_N + j] += av * b[k * BMM_N + j];
            }
        }
    }
    return 0;
}
