/* bench/naive/transpose.c: B = A^T, written row by row (contiguous stores,
 * strided loads). */
#include "naive.h"

int naive_transpose(const float *A, float *B)
{
    for (int i = 0; i < TR_N; i++)
        for (int j = 0; j < TR_M; j++)
            B[(long)i * TR_M + j] = A[(long)j * TR_N + i];
    return 0;
}
