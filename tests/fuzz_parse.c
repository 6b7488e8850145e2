/* tests/fuzz_parse.c: libFuzzer target for the front end.  Any input must
 * parse or fail cleanly (no crash, leak, or sanitizer report).  Small
 * programs that parse are also interpreted on exactly sized buffers filled
 * with hostile values, so ASan catches any load the static bounds check
 * wrongly accepted.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang-19 -DKILN_FUZZ=ON \
 *         -DKILN_MODULES=ir -DKILN_TEST_GLOB=test_fe*
 *   build-fuzz/tests/fuzz_parse -max_total_time=60 CORPUS tests/fail */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool small_enough(const Program *p)
{
    int64_t total = 0;
    for (int i = 0; i < p->ntensors; i++)
        total += tensor_numel(&p->tensors[i]);
    if (total > (1 << 16))
        return false;
    double iters = 0;
    for (int s = 0; s < p->nstmts; s++) {
        double n = 1;
        for (int v = 0; v < p->stmts[s].nvars; v++)
            n *= (double)p->stmts[s].vars[v]->extent;
        iters += n;
    }
    return iters <= (1 << 18);
}

static void fill(void *buf, DType dt, int64_t n, uint64_t seed)
{
    static const int64_t ints[] = {0, 1, -1, 7, -7, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 3};
    static const double flts[] = {0.0,       1.5,  -2.25, NAN, INFINITY,
                                  -INFINITY, 1e30, -0.0,  3.0, 1e-40};
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = (seed + (uint64_t)i) * 0x9e3779b97f4a7c15ull;
        int k = (int)((r >> 32) % 10);
        switch (dt) {
        case DT_F32:
            ((float *)buf)[i] = (float)flts[k];
            break;
        case DT_F64:
            ((double *)buf)[i] = flts[k];
            break;
        case DT_I32:
            ((int32_t *)buf)[i] = (int32_t)ints[k];
            break;
        default:
            ((int64_t *)buf)[i] = ints[k];
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (ir_parse_yaml_string((const char *)data, size, "fuzz.yaml", &p, &e) != KILN_OK) {
        if (p || !e.code || !e.msg[0])
            abort(); /* a failure must leave no program and say why */
        return 0;
    }
    char *c = ir_program_canonical(p);
    free(c);
    (void)ir_program_flops(p);
    if (small_enough(p)) {
        void **bufs = calloc((size_t)p->ntensors, sizeof(void *));
        for (int i = 0; bufs && i < p->ntensors; i++) {
            const Tensor *t = &p->tensors[i];
            if (t->kind == T_TEMP)
                continue;
            bufs[i] = malloc((size_t)(tensor_numel(t) * dtype_size(t->dt)));
            if (bufs[i])
                fill(bufs[i], t->dt, tensor_numel(t), (uint64_t)i);
        }
        if (bufs)
            (void)ir_interpret(p, (void *const *)bufs, NULL);
        for (int i = 0; bufs && i < p->ntensors; i++)
            free(bufs[i]);
        free(bufs);
    }
    ir_program_free(p);
    return 0;
}
