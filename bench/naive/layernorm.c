/* bench/naive/layernorm.c: layer normalisation of each row with gamma and
 * beta, eps 1e-5, in the two-pass form (mean, then variance of x - mean). */
#include <math.h>

#include "naive.h"

int naive_layernorm(const float *X, const float *gamma, const float *beta, float *Y)
{
    for (int i = 0; i < LN_M; i++) {
        const float *x = X + i * LN_N;
        float *y = Y + i * LN_N;
        float s = 0.0f;
        for (int j = 0; j < LN_N; j++)
            s += x[j];
        float mean = s / (float)LN_N;
        float v = 0.0f;
        for (int j = 0; j < LN_N; j++)
            v += (x[j] - mean) * (x[j] - mean);
        float rstd = 1.0f / sqrtf(v / (float)LN_N + 1e-5f);
        for (int j = 0; j < LN_N; j++)
            y[j] = (x[j] - mean) * rstd * gamma[j] + beta[j];
    }
    return 0;
}
