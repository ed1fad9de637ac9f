// The FP32 GEMM over weights packed in panels (`adk_pack_panels`), included once per instruction set by
// kernels_{portable,avx2,avx512}.c with ADK_SUFFIX and ADK_VW set, after kernels_impl.h (whose ADK_FN, vector type
// and loads and stores it uses).
//
// Why our own: at the few rows of a single request the products stream every weight once, and oneDNN's
// `dnnl_sgemm` re-packs its B operand on each call; reading panels packed once, in order, ran the model's 24 products
// 1.3–1.6× faster at 16 rows, 1.1–1.2× at 52 and as fast at 512 (Benchmarks/README.md, "The FP32 GEMM").
#include <stdint.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"

#define PVF ADK_FN(adk_vf)

// Panel rows (k) ahead that a tile asks the memory system for.
#define ADK_PG_PREFETCH_ROWS 16

// Rows per register tile: two vectors of columns per row, so 2 · rows accumulators, plus two B vectors and a
// broadcast, must fit the register file (32 vector registers with AVX-512, 16 with AVX2 and SSE).
#if ADK_VW == 16
#define ADK_PG_ROWS 12
#else
#define ADK_PG_ROWS 6
#endif

// c[R × 2·VW] = a[R × k] · b[k × 2·VW]: a's rows lda apart, b's ADK_PANEL_WIDTH apart (a slice of one panel). R is
// a constant at each call site, so the accumulators stay in registers.
static inline __attribute__((always_inline)) void ADK_FN(adk_pg_tile)(const int R, const float *restrict a,
                                                                         int64_t lda, const float *restrict b, int64_t k,
                                                                         float *restrict c, int64_t ldc) {
    PVF acc0[ADK_PG_ROWS], acc1[ADK_PG_ROWS];
#pragma unroll
    for (int r = 0; r < R; r++) acc0[r] = acc1[r] = (PVF)(0.0f);
    for (int64_t i = 0; i < k; i++) {
        const float *restrict bi = b + i * ADK_PANEL_WIDTH;
        const PVF b0 = ADK_FN(adk_load)(bi), b1 = ADK_FN(adk_load)(bi + ADK_VW);
        // At a few rows the panel comes from memory, once and in order: ask for its rows well ahead (both cache
        // lines of a 128-byte row). Without this the panel GEMM was slower than oneDNN's at 16 rows.
        __builtin_prefetch(bi + ADK_PG_PREFETCH_ROWS * ADK_PANEL_WIDTH);
        __builtin_prefetch(bi + ADK_PG_PREFETCH_ROWS * ADK_PANEL_WIDTH + 16);
#pragma unroll
        for (int r = 0; r < R; r++) {
            const PVF x = (PVF)(a[r * lda + i]);
            acc0[r] += x * b0;
            acc1[r] += x * b1;
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        ADK_FN(adk_store)(c + r * ldc, acc0[r]);
        ADK_FN(adk_store)(c + r * ldc + ADK_VW, acc1[r]);
    }
}

#define ADK_PG_TILE_CASE(R) \
    case R: ADK_FN(adk_pg_tile)(R, a, lda, b, k, c, ldc); break;

static void ADK_FN(adk_pg_rows)(int rows, const float *a, int64_t lda, const float *b, int64_t k, float *c,
                                   int64_t ldc) {
    switch (rows) {
        ADK_PG_TILE_CASE(1) ADK_PG_TILE_CASE(2) ADK_PG_TILE_CASE(3) ADK_PG_TILE_CASE(4) ADK_PG_TILE_CASE(5)
        ADK_PG_TILE_CASE(6)
#if ADK_PG_ROWS > 6
        ADK_PG_TILE_CASE(7) ADK_PG_TILE_CASE(8) ADK_PG_TILE_CASE(9) ADK_PG_TILE_CASE(10) ADK_PG_TILE_CASE(11)
        ADK_PG_TILE_CASE(12)
#endif
    default: break;
    }
}

void ADK_FN(adk_panel_gemm_range)(const adk_panel_gemm_args *g, int64_t first, int64_t last) {
    // Each panel is read from memory by the first row tile and from cache by the rest. Full tiles first (16 rows as
    // 12 + 4): tiles of equal height (8 + 8) were slower at 16 rows.
    for (int64_t panel = first; panel < last; panel++) {
        const float *p = g->panels + panel * g->k * ADK_PANEL_WIDTH;
        for (int64_t slice = 0; slice < ADK_PANEL_WIDTH; slice += 2 * ADK_VW) {
            for (int64_t row = 0; row < g->rows; row += ADK_PG_ROWS) {
                const int64_t left = g->rows - row, height = left < ADK_PG_ROWS ? left : ADK_PG_ROWS;
                ADK_FN(adk_pg_rows)((int)height, g->a + row * g->lda, g->lda, p + slice, g->k,
                                       g->c + row * g->ldc + panel * ADK_PANEL_WIDTH + slice, g->ldc);
            }
        }
    }
}

#undef PVF
#undef ADK_PG_ROWS
#undef ADK_PG_TILE_CASE
#undef ADK_PG_PREFETCH_ROWS
