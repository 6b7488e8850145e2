/* bench/naive/conv2d.c: NCHW 3x3 convolution, stride 1, zero padding 1.
 * Loop order n, k, c, r, s, y, x: the innermost loop runs along a row of
 * input and output (contiguous, vectorizable) with one weight broadcast;
 * padding is handled by clipping the y and x ranges, not per element. */
#include "naive.h"

int naive_conv2d(const float *I, const float *Wt, float *O)
{
    for (int n = 0; n < CV_N; n++) {
        for (int k = 0; k < CV_K; k++) {
            float *o = O + ((long)n * CV_K + k) * CV_H * CV_W;
            for (int p = 0; p < CV_H * CV_W; p++)
                o[p] = 0.0f;
            for (int c = 0; c < CV_C; c++) {
                const float *in = I + ((long)n * CV_C + c) * CV_H * CV_W;
                for (int r = 0; r < 3; r++) {
                    for (int s = 0; s < 3; s++) {
                        float w = Wt[((k * CV_C + c) * 3 + r) * 3 + s];
                        int y0 = r == 0 ? 1 : 0, y1 = r == 2 ? CV_H - 1 : CV_H;
                        int x0 = s == 0 ? 1 : 0, x1 = s == 2 ? CV_W - 1 : CV_W;
                        for (int y = y0; y < y1; y++)
                            for (int x = x0; x < x1; x++)
                                o[y * CV_W + x] += in[(y + r - 1) * CV_W + (x + s - 1)] * w;
                    }
                }
            }
        }
    }
    return 0;
}
