/* tests/programs/link_main.c: links two kiln-emitted objects side by side
 * (small_matmul.o and rowsum.o, both with parallel loops and so both with
 * their own internal parallel-for) and checks both results in plain C. */
#include <math.h>
#include <stdio.h>

#include "rowsum.h"
#include "small_matmul.h"

enum { M = 37, N = 45, K = 29, R = 19, S = 70 };

int main(void)
{
    static float A[M * K], B[K * N], C[M * N];
    static double X[R * S], Y[R];
    for (int i = 0; i < M * K; i++)
        A[i] = (float)((i * 7) % 11 - 5) * 0.25f;
    for (int i = 0; i < K * N; i++)
        B[i] = (float)((i * 3) % 13 - 6) * 0.5f;
    for (int i = 0; i < R * S; i++)
        X[i] = (double)((i * 5) % 17 - 8) * 0.125;
    for (int i = 0; i < M * N; i++)
        C[i] = 12345.0f; /* the kernel must overwrite */
    if (small_matmul(A, B, C) != 0 || rowsum(X, Y) != 0) {
        printf("kernel returned an error\n");
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = 0;
            for (int k = 0; k < K; k++)
                ref += (double)A[i * K + k] * B[k * N + j];
            if (fabs(C[i * N + j] - ref) > 1e-3 * (1 + fabs(ref)))
                bad++;
        }
    for (int r = 0; r < R; r++) {
        double ref = 0;
        for (int s = 0; s < S; s++)
            ref += X[r * S + s] * 2.0 + 1.0;
        if (fabs(Y[r] - ref) > 1e-9 * (1 + fabs(ref)))
            bad++;
    }
    printf("link_main: %d mismatches\n", bad);
    return bad != 0;
}
