/* bench/naive/depthwise_conv.c: depthwise 3x3 convolution (one filter per
 * channel), stride 1, zero padding 1; same loop structure as conv2d.c. */
#include "naive.h"

int naive_depthwise_conv(const float *I, const float *Wt, float *O)
{
    for (int n = 0; n < DW_N; n++) {
        for (int c = 0; c < DW_C; c++) {
            const float *in = I + ((long)n * DW_C + c) * DW_H * DW_W;
            float *o = O + ((long)n * DW_C + c) * DW_H * DW_W;
            for (int p = 0; p < DW_H * DW_W; p++)
                o[p] = 0.0f;
            for (int r = 0; r < 3; r++) {
                for (int s = 0; s < 3; s++) {
                    float w = Wt[(c * 3 + r) * 3 + s];
                    int y0 = r == 0 ? 1 : 0, y1 = r == 2 ? DW_H - 1 : DW_H;
                    int x0 = s == 0 ? 1 : 0, x1 = s == 2 ? DW_W - 1 : DW_W;
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++)
                            o[y * DW_W + x] += in[(y + r - 1) * DW_W + (x + s - 1)] * w;
                }
            }
        }
    }
    return 0;
}
