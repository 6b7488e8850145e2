/* bench/naive/matmul_bias_relu.c: D = max(A B + bias, 0), i-k-j order; the
 * product is accumulated in D itself (what one would write by hand)
 * rather than in a separate temporary. */
#include "naive.h"

int naive_matmul_bias_relu(const float *A, const float *B, const float *bias, float *D)
{
    for (int i = 0; i < MBR_M; i++) {
        float *d = D + i * MBR_N;
        for (int j = 0; j < MBR_N; j++)
            d[j] = 0.0f;
        for (int k = 0; k < MBR_K; k++) {
            float a = A[i * MBR_K + k];
            for (int j = 0; j < MBR_N; j++)
                d[j] += a * B[k * MBR_N + j];
        }
        for (int j = 0; j < MBR_N; j++) {
            float v = d[j] + bias[j];
            d[j] = v > 0.0f ? v : 0.0f;
        }
    }
    return 0;
}
