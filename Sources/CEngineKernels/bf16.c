// Rows of floats to bfloat16 for the BF16 products: round to nearest even with denormals read as zero, as AVX-512
// BF16's VCVTNEPS2BF16 does, so that both copies give the same bits.
#include <stdint.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint16_t adk_bf16_of(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    // A NaN stays a (quiet) NaN instead of rounding into infinity.
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    // A denormal becomes a zero of its sign.
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static void adk_convert_rows_portable(const float *x, int64_t ldx, int64_t first, int64_t last, int64_t cols,
                                      uint16_t *y, int64_t ldy) {
    for (int64_t r = first; r < last; r++) {
        for (int64_t c = 0; c < cols; c++) y[r * ldy + c] = adk_bf16_of(x[r * ldx + c]);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
static void adk_convert_rows_avx512bf16(const float *x, int64_t ldx, int64_t first, int64_t last, int64_t cols,
                                        uint16_t *y, int64_t ldy) {
    for (int64_t r = first; r < last; r++) {
        const float *in = x + r * ldx;
        uint16_t *out = y + r * ldy;
        int64_t c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256bh converted = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + c));
            _mm256_storeu_si256((__m256i *)(out + c), (__m256i)converted);
        }
        if (c < cols) {
            __mmask16 mask = (__mmask16)((1u << (cols - c)) - 1);
            __m256bh converted = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, in + c));
            _mm256_mask_storeu_epi16(out + c, mask, (__m256i)converted);
        }
    }
}
#endif

typedef struct {
    const float *x;
    int64_t ldx, cols;
    uint16_t *y;
    int64_t ldy;
    int native;
} adk_convert_context;

static void adk_convert_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_convert_context *c = context;
#if defined(__x86_64__)
    if (c->native) {
        adk_convert_rows_avx512bf16(c->x, c->ldx, first, last, c->cols, c->y, c->ldy);
        return;
    }
#endif
    adk_convert_rows_portable(c->x, c->ldx, first, last, c->cols, c->y, c->ldy);
}

// Whether the CPU has AVX-512 BF16: 0 no, 1 yes, -1 not read yet. Read once: cpuid traps to the hypervisor in a
// VM, and reading it on every call took 9% of a BF16 pass at one row of 16 tokens.
static int adk_has_avx512_bf16 = -1;

void adk_convert_bf16(int native, const float *x, int64_t ldx, int64_t rows, int64_t cols, uint16_t *y, int64_t ldy) {
    int has = __atomic_load_n(&adk_has_avx512_bf16, __ATOMIC_RELAXED);
    if (has < 0) {
        has = adk_cpu_detect().avx512_bf16 != 0;
        __atomic_store_n(&adk_has_avx512_bf16, has, __ATOMIC_RELAXED);
    }
    adk_convert_context context = {x, ldx, cols, y, ldy, native && has};
    adk_parallel_for(rows, rows * cols >= 64 * 1024, adk_convert_body, &context);
}
