/* bench/naive/blur.c: two-stage 3x3 box blur; the horizontal pass writes a
 * full temporary image, then the vertical pass reads it (the textbook
 * version in the Halide papers). */
#include <stdlib.h>

#include "naive.h"

int naive_blur(const float *I, float *O)
{
    const int OW = BL_W - 2, OH = BL_H - 2;
    float *T = malloc(sizeof(float) * BL_H * OW);
    if (!T)
        return 1;
    for (int y = 0; y < BL_H; y++)
        for (int x = 0; x < OW; x++)
            T[y * OW + x] = (I[y * BL_W + x] + I[y * BL_W + x + 1] + I[y * BL_W + x + 2]) / 3.0f;
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++)
            O[y * OW + x] = (T[y * OW + x] + T[(y + 1) * OW + x] + T[(y + 2) * OW + x]) / 3.0f;
    free(T);
    return 0;
}
