/* bench/naive/softmax.c: numerically stable softmax of each row: row max,
 * exponentials of the shifted row and their sum, then a division. */
#include <math.h>

#include "naive.h"

int naive_softmax(const float *X, float *Y)
{
    for (int i = 0; i < SM_M; i++) {
        const float *x = X + i * SM_N;
        float *y = Y + i * SM_N;
        float m = -INFINITY;
        for (int j = 0; j < SM_N; j++)
            m = x[j] > m ? x[j] : m;
        float s = 0.0f;
        for (int j = 0; j < SM_N; j++) {
            y[j] = expf(x[j] - m);
            s += y[j];
        }
        for (int j = 0; j < SM_N; j++)
            y[j] = y[j] / s;
    }
    return 0;
}
