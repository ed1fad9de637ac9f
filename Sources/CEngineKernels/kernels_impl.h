// Kernel bodies, included once per instruction set by kernels_{portable,avx2,avx512}.c with ADK_SUFFIX set and
// a `#pragma clang attribute` that compiles every function here for that set. Plain loops over restrict pointers
// that the compiler vectorises for the target; exp and erf are polynomial so that they vectorise too.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"

#define ADK_CAT2(a, b) a##_##b
#define ADK_CAT(a, b) ADK_CAT2(a, b)
#define ADK_FN(name) ADK_CAT(name, ADK_SUFFIX)

// Vectors of ADK_VW floats (16 for AVX-512, 8 for AVX2, 4 for the baseline): reductions and exp are written on
// them explicitly, since the compiler keeps float reductions in order (scalar) without -ffast-math.
typedef float ADK_FN(adk_vf) __attribute__((ext_vector_type(ADK_VW)));
typedef int32_t ADK_FN(adk_vi) __attribute__((ext_vector_type(ADK_VW)));
#define VF ADK_FN(adk_vf)
#define VI ADK_FN(adk_vi)

static inline VF ADK_FN(adk_load)(const float *p) {
    VF v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void ADK_FN(adk_store)(float *p, VF v) { memcpy(p, &v, sizeof v); }
// A sum of the lanes by halving (log2 of the width in vector adds, not a chain of scalar adds in order): for the
// LoRA kernel's many short dot products, where the chain was as costly as the multiply-adds.
typedef float ADK_FN(adk_v2f) __attribute__((ext_vector_type(2)));
typedef float ADK_FN(adk_v4f) __attribute__((ext_vector_type(4)));
#if ADK_VW >= 8
typedef float ADK_FN(adk_v8f) __attribute__((ext_vector_type(8)));
#endif
static inline float ADK_FN(adk_hsum_halving)(VF v) {
#if ADK_VW == 16
    const ADK_FN(adk_v8f) h8 = v.lo + v.hi;
    const ADK_FN(adk_v4f) h4 = h8.lo + h8.hi;
#elif ADK_VW == 8
    const ADK_FN(adk_v4f) h4 = v.lo + v.hi;
#else
    const ADK_FN(adk_v4f) h4 = v;
#endif
    const ADK_FN(adk_v2f) h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
}
static inline float ADK_FN(adk_hsum)(VF v) {
    float s = 0.0f;
    for (int i = 0; i < ADK_VW; i++) s += v[i];
    return s;
}
static inline float ADK_FN(adk_hmax)(VF v) {
    float s = v[0];
    for (int i = 1; i < ADK_VW; i++) s = s > v[i] ? s : v[i];
    return s;
}
static inline float ADK_FN(adk_hmin)(VF v) {
    float s = v[0];
    for (int i = 1; i < ADK_VW; i++) s = s < v[i] ? s : v[i];
    return s;
}

// exp on a vector: 2^n · p(r), r = x − n·ln2 (Cody–Waite), p of degree 6: about 2 ulp.
static inline VF ADK_FN(adk_vexp)(VF x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, (VF)(-87.0f)), (VF)(88.0f));
    VF n = __builtin_elementwise_floor(x * 1.44269504088896341f + 0.5f);
    VF r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    VF p = (VF)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
    return p * (VF)bits;
}

// Σ x[i] over n values.
static inline float ADK_FN(adk_sum)(const float *x, int64_t n) {
    VF acc = (VF)0.0f;
    int64_t i = 0;
    for (; i + ADK_VW <= n; i += ADK_VW) acc += ADK_FN(adk_load)(x + i);
    float s = ADK_FN(adk_hsum)(acc);
    for (; i < n; i++) s += x[i];
    return s;
}

// Σ (x[i] − mean)² over n values.
static inline float ADK_FN(adk_centered_squares)(const float *x, int64_t n, float mean) {
    VF acc = (VF)0.0f;
    int64_t i = 0;
    for (; i + ADK_VW <= n; i += ADK_VW) {
        VF c = ADK_FN(adk_load)(x + i) - mean;
        acc += c * c;
    }
    float s = ADK_FN(adk_hsum)(acc);
    for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
    return s;
}

// erf(x) as the rational approximation Eigen and XLA use (a few ulp on float).
static inline float ADK_FN(adk_erf)(float input) {
    float x = fminf(fmaxf(input, -4.0f), 4.0f);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    p *= x;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return p / q;
}

static inline void ADK_FN(adk_quantize_row)(const float *restrict x, int64_t cols, uint8_t *restrict out,
                                            float *scale_out, int32_t *zero_out, int32_t qmax,
                                            const float *restrict multiplier) {
    VF vlo = (VF)0.0f, vhi = (VF)0.0f;
    int64_t i = 0;
    if (multiplier) {
        for (; i + ADK_VW <= cols; i += ADK_VW) {
            VF v = ADK_FN(adk_load)(x + i) * ADK_FN(adk_load)(multiplier + i);
            vlo = __builtin_elementwise_min(vlo, v);
            vhi = __builtin_elementwise_max(vhi, v);
        }
    } else {
        for (; i + ADK_VW <= cols; i += ADK_VW) {
            VF v = ADK_FN(adk_load)(x + i);
            vlo = __builtin_elementwise_min(vlo, v);
            vhi = __builtin_elementwise_max(vhi, v);
        }
    }
    float lo = ADK_FN(adk_hmin)(vlo), hi = ADK_FN(adk_hmax)(vhi);
    for (; i < cols; i++) {
        const float v = multiplier ? x[i] * multiplier[i] : x[i];
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
    }
    float scale = (hi - lo) / (float)qmax;
    if (!(scale > 0.0f)) scale = 1.0f;
    float inverse = 1.0f / scale;
    float zero = floorf(-lo * inverse + 0.5f);
    zero = fminf(fmaxf(zero, 0.0f), (float)qmax);
    float top = (float)qmax;
    if (multiplier) {
        for (int64_t j = 0; j < cols; j++) {
            float v = fminf(fmaxf(x[j] * multiplier[j] * inverse + zero, 0.0f), top);
            out[j] = (uint8_t)(int32_t)(v + 0.5f);
        }
    } else {
        for (int64_t j = 0; j < cols; j++) {
            float v = fminf(fmaxf(x[j] * inverse + zero, 0.0f), top);
            out[j] = (uint8_t)(int32_t)(v + 0.5f);
        }
    }
    *scale_out = scale;
    *zero_out = (int32_t)zero;
}

void ADK_FN(adk_quantize_range)(const float *x, int64_t ldx, int64_t first, int64_t last, int64_t cols,
                                const adk_quantized_rows *q) {
    for (int64_t r = first; r < last; r++) {
        ADK_FN(adk_quantize_row)(x + r * ldx, cols, q->data + r * q->ld, q->scale + r, q->zero + r, q->qmax, q->multiplier);
    }
}

#include "kernels_lora_impl.h"

// LayerNorm of one row `x` into `y` (which may be `x`); `beta` may be NULL (a norm without bias).
static inline void ADK_FN(adk_layer_norm)(const float *x, float *y, int64_t cols, const float *restrict gamma,
                                          const float *restrict beta, float eps) {
    const float mean = ADK_FN(adk_sum)(x, cols) / (float)cols;
    const float squares = ADK_FN(adk_centered_squares)(x, cols, mean);
    const float inverse = 1.0f / sqrtf(squares / (float)cols + eps);
    if (beta) {
        for (int64_t i = 0; i < cols; i++) y[i] = (x[i] - mean) * inverse * gamma[i] + beta[i];
    } else {
        for (int64_t i = 0; i < cols; i++) y[i] = (x[i] - mean) * inverse * gamma[i];
    }
}

void ADK_FN(adk_geglu_range)(const adk_geglu_args *g, int64_t first, int64_t last) {
    const int64_t cols = g->cols;
    for (int64_t r = first; r < last; r++) {
        const float *restrict x = g->x + r * g->ldx;
        float *restrict y = g->y + r * g->ldy;
        for (int64_t i = 0; i < cols; i++) {
            const float v = x[i];
            y[i] = 0.5f * v * (1.0f + ADK_FN(adk_erf)(v * 0.70710678118654752440f)) * x[cols + i];
        }
        if (g->quantized) {
            const adk_quantized_rows *q = g->quantized;
            ADK_FN(adk_quantize_row)(y, cols, q->data + r * q->ld, q->scale + r, q->zero + r, q->qmax, q->multiplier);
        }
    }
}

// The dequantisation and bias of row r: `v` into y's row.
static inline void ADK_FN(adk_epilogue_input)(const adk_epilogue_args *a, int64_t r) {
    const int64_t cols = a->cols;
    float *restrict y = a->y + r * a->ldy;
    if (a->dequantize) {
        const adk_dequantize *d = a->dequantize;
        const int32_t *restrict acc = d->acc + r * d->ld;
        const float *restrict col_scale = d->col_scale;
        const float *restrict col_sum = d->col_sum;
        const float row_scale = d->row_scale[r];
        // In float: an int32 multiply per element cost more than the rest of the pass, and the rounding (at most
        // a few units in sums of tens of millions) is far below the quantisation's own error.
        const float row_zero = (float)d->row_zero[r];
        if (a->bias) {
            const float *restrict bias = a->bias;
            for (int64_t i = 0; i < cols; i++) y[i] = row_scale * col_scale[i] * ((float)acc[i] - row_zero * col_sum[i]) + bias[i];
        } else {
            for (int64_t i = 0; i < cols; i++) y[i] = row_scale * col_scale[i] * ((float)acc[i] - row_zero * col_sum[i]);
        }
    } else if (a->bias) {
        const float *restrict bias = a->bias;
        for (int64_t i = 0; i < cols; i++) y[i] += bias[i];
    }
}

// The operation on row r's `v`, then its quantisation for the next product.
static inline void ADK_FN(adk_epilogue_output)(const adk_epilogue_args *a, int64_t r) {
    const int64_t cols = a->cols;
    float *restrict y = a->y + r * a->ldy;
    switch (a->op) {
    case ADK_EPILOGUE_BIAS:
        break;
    case ADK_EPILOGUE_BIAS_GELU:
        for (int64_t i = 0; i < cols; i++) {
            float v = y[i];
            y[i] = 0.5f * v * (1.0f + ADK_FN(adk_erf)(v * 0.70710678118654752440f));
        }
        break;
    case ADK_EPILOGUE_BIAS_RESIDUAL_NORM: {
        if (a->residual) {
            const float *restrict residual = a->residual + r * a->ldr;
            for (int64_t i = 0; i < cols; i++) y[i] += residual[i];
        }
        ADK_FN(adk_layer_norm)(y, y, cols, a->gamma, a->beta, a->eps);
        break;
    }
    case ADK_EPILOGUE_BIAS_RESIDUAL_PRENORM: {
        // The residual stream keeps the sum; y becomes the next block's normalised input.
        float *restrict residual = (float *)a->residual + r * a->ldr;
        for (int64_t i = 0; i < cols; i++) residual[i] += y[i];
        ADK_FN(adk_layer_norm)(residual, y, cols, a->gamma, a->beta, a->eps);
        break;
    }
    }
    if (a->quantized) {
        const adk_quantized_rows *q = a->quantized;
        ADK_FN(adk_quantize_row)(y, cols, q->data + r * q->ld, q->scale + r, q->zero + r, q->qmax, q->multiplier);
    }
}

void ADK_FN(adk_epilogue_range)(const adk_epilogue_args *a, int64_t first, int64_t last) {
    if (a->term_count == 0) {
        for (int64_t r = first; r < last; r++) {
            ADK_FN(adk_epilogue_input)(a, r);
            ADK_FN(adk_epilogue_output)(a, r);
        }
        return;
    }
    // With LoRA terms, a few rows at a time: their `v`, then the terms' up-projections over all of them (each loaded
    // Bt vector serving every row, as in adk_lora_up), then the operation, while the rows are still in L1.
    int64_t term = 0;  // the first term that may cover the block (terms are sorted by row)
    for (int64_t r0 = first; r0 < last; r0 += ADK_LORA_ROWS) {
        const int64_t r1 = r0 + ADK_LORA_ROWS < last ? r0 + ADK_LORA_ROWS : last;
        for (int64_t r = r0; r < r1; r++) ADK_FN(adk_epilogue_input)(a, r);
        while (term < a->term_count && a->terms[term].row + a->terms[term].rows <= r0) term++;
        for (int64_t k = term; k < a->term_count && a->terms[k].row < r1; k++) {
            const adk_lora_term *lora = &a->terms[k];
            const int64_t from = lora->row > r0 ? lora->row : r0;
            const int64_t to = lora->row + lora->rows < r1 ? lora->row + lora->rows : r1;
            if (to <= from) continue;
            ADK_FN(adk_lora_up)(lora->t + (from - lora->row) * lora->rank, to - from, lora->bt, lora->rank, lora->cols,
                                a->y + from * a->ldy + lora->col, a->ldy);
        }
        for (int64_t r = r0; r < r1; r++) ADK_FN(adk_epilogue_output)(a, r);
    }
}

#include "kernels_attention_impl.h"

#undef VF
#undef VI
