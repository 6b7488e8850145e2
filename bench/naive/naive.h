/* bench/naive/naive.h: plain C versions of every example, the baseline a
 * user would write without kiln.  Each function has the ABI of the kernel
 * kiln generates for examples/NAME.yaml (one pointer per tensor, inputs
 * then outputs, dense row-major) under the name naive_NAME, and the sizes
 * below must equal the params of the YAML (bench checks this at start-up).
 *
 * Rules for these files: textbook loops with the best simple loop order
 * (e.g. i-k-j for matmul so the inner loop is contiguous), no tiling, no
 * intrinsics, no pragmas; compiled with clang-19 -O3 -march=native and
 * IEEE semantics (no -ffast-math), like the kiln kernels. */
#ifndef KILN_BENCH_NAIVE_H
#define KILN_BENCH_NAIVE_H

/* matmul.yaml */
#define MM_M 1024
#define MM_N 1024
#define MM_K 1024
int naive_matmul(const float *A, const float *B, float *C);

/* matmul_bias_relu.yaml */
#define MBR_M 1024
#define MBR_N 1024
#define MBR_K 1024
int naive_matmul_bias_relu(const float *A, const float *B, const float *bias, float *D);

/* batch_matmul.yaml */
#define BMM_H 12
#define BMM_M 128
#define BMM_N 128
#define BMM_K 64
int naive_batch_matmul(const float *A, const float *B, float *C);

/* conv2d.yaml (3x3, stride 1, zero padding 1) */
#define CV_N 1
#define CV_C 64
#define CV_K 64
#define CV_H 56
#define CV_W 56
int naive_conv2d(const float *I, const float *Wt, float *O);

/* depthwise_conv.yaml (3x3, stride 1, zero padding 1) */
#define DW_N 1
#define DW_C 64
#define DW_H 112
#define DW_W 112
int naive_depthwise_conv(const float *I, const float *Wt, float *O);

/* blur.yaml (output is (H-2) x (W-2)) */
#define BL_H 2048
#define BL_W 2048
int naive_blur(const float *I, float *O);

/* softmax.yaml (over each row) */
#define SM_M 1024
#define SM_N 1024
int naive_softmax(const float *X, float *Y);

/* layernorm.yaml (over each row, eps 1e-5) */
#define LN_M 2048
#define LN_N 768
int naive_layernorm(const float *X, const float *gamma, const float *beta, float *Y);

/* transpose.yaml: B = A^T with A of M x N */
#define TR_M 4096
#define TR_N 4096
int naive_transpose(const float *A, float *B);

#endif
