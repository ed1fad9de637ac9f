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

// exp(x) to about 2 ulp: 2^n · p(r) with r = x − n·ln2 (Cody–Waite split), p a degree-6 polynomial.
static inline float ADK_FN(adk_exp)(float x) {
    x = fminf(fmaxf(x, -87.0f), 88.0f);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
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
                                            float *scale_out, int32_t *zero_out, int32_t qmax) {
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < cols; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    float scale = (hi - lo) / (float)qmax;
    if (!(scale > 0.0f)) scale = 1.0f;
    float inverse = 1.0f / scale;
    float zero = floorf(-lo * inverse + 0.5f);
    zero = fminf(fmaxf(zero, 0.0f), (float)qmax);
    float top = (float)qmax;
    for (int64_t i = 0; i < cols; i++) {
        float v = fminf(fmaxf(x[i] * inverse + zero, 0.0f), top);
        out[i] = (uint8_t)(int32_t)(v + 0.5f);
    }
    *scale_out = scale;
    *zero_out = (int32_t)zero;
}

void ADK_FN(adk_quantize_range)(const float *x, int64_t ldx, int64_t first, int64_t last, int64_t cols,
                                const adk_quantized_rows *q) {
    for (int64_t r = first; r < last; r++) {
        ADK_FN(adk_quantize_row)(x + r * ldx, cols, q->data + r * q->ld, q->scale + r, q->zero + r, q->qmax);
    }
}

void ADK_FN(adk_epilogue_range)(const adk_epilogue_args *a, int64_t first, int64_t last) {
    const int64_t cols = a->cols;
    for (int64_t r = first; r < last; r++) {
        float *restrict y = a->y + r * a->ldy;
        if (a->dequantize) {
            const adk_dequantize *d = a->dequantize;
            const int32_t *restrict acc = d->acc + r * d->ld;
            const float *restrict col_scale = d->col_scale;
            const int32_t *restrict col_sum = d->col_sum;
            const float row_scale = d->row_scale[r];
            const int32_t row_zero = d->row_zero[r];
            for (int64_t i = 0; i < cols; i++) y[i] = row_scale * col_scale[i] * (float)(acc[i] - row_zero * col_sum[i]);
        }
        if (a->bias) {
            const float *restrict bias = a->bias;
            for (int64_t i = 0; i < cols; i++) y[i] += bias[i];
        }
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
            float sum = 0.0f;
            for (int64_t i = 0; i < cols; i++) sum += y[i];
            const float mean = sum / (float)cols;
            float squares = 0.0f;
            for (int64_t i = 0; i < cols; i++) {
                float c = y[i] - mean;
                squares += c * c;
            }
            const float inverse = 1.0f / sqrtf(squares / (float)cols + a->eps);
            const float *restrict gamma = a->gamma;
            const float *restrict beta = a->beta;
            for (int64_t i = 0; i < cols; i++) y[i] = (y[i] - mean) * inverse * gamma[i] + beta[i];
            break;
        }
        }
        if (a->quantized) {
            const adk_quantized_rows *q = a->quantized;
            ADK_FN(adk_quantize_row)(y, cols, q->data + r * q->ld, q->scale + r, q->zero + r, q->qmax);
        }
    }
}

void ADK_FN(adk_attention_range)(const adk_attention_args *a, int64_t first, int64_t last, float *scratch) {
    const int64_t d_head = a->head_size;
    const int64_t width = a->heads * d_head;
    for (int64_t job = first; job < last; job++) {
        const int64_t sequence = job / a->heads;
        const int64_t head = job % a->heads;
        const int64_t length = a->lengths[sequence];
        const int64_t start = a->starts[sequence];
        float *restrict qs = scratch;                       // [length, d_head], scaled
        float *restrict kt = qs + length * d_head;          // [d_head, length]
        float *restrict vs = kt + length * d_head;          // [length, d_head]
        float *restrict p = vs + length * d_head;           // [length]
        float *restrict ctx = p + length;                   // [d_head]
        const float *qb = a->bias ? a->bias + head * d_head : NULL;
        const float *kb = a->bias ? a->bias + width + head * d_head : NULL;
        const float *vb = a->bias ? a->bias + 2 * width + head * d_head : NULL;
        for (int64_t j = 0; j < length; j++) {
            const float *restrict row = a->qkv + (start + j) * a->ldqkv + head * d_head;
            for (int64_t d = 0; d < d_head; d++) {
                qs[j * d_head + d] = (row[d] + (qb ? qb[d] : 0.0f)) * a->scale;
                kt[d * length + j] = row[width + d] + (kb ? kb[d] : 0.0f);
                vs[j * d_head + d] = row[2 * width + d] + (vb ? vb[d] : 0.0f);
            }
        }
        for (int64_t i = 0; i < length; i++) {
            for (int64_t j = 0; j < length; j++) p[j] = 0.0f;
            for (int64_t d = 0; d < d_head; d++) {
                const float q = qs[i * d_head + d];
                const float *restrict k = kt + d * length;
                for (int64_t j = 0; j < length; j++) p[j] += q * k[j];
            }
            float maximum = -INFINITY;
            for (int64_t j = 0; j < length; j++) maximum = fmaxf(maximum, p[j]);
            float sum = 0.0f;
            for (int64_t j = 0; j < length; j++) {
                p[j] = ADK_FN(adk_exp)(p[j] - maximum);
                sum += p[j];
            }
            const float inverse = 1.0f / sum;
            for (int64_t d = 0; d < d_head; d++) ctx[d] = 0.0f;
            for (int64_t j = 0; j < length; j++) {
                const float w = p[j] * inverse;
                const float *restrict v = vs + j * d_head;
                for (int64_t d = 0; d < d_head; d++) ctx[d] += w * v[d];
            }
            float *restrict out = a->context + (start + i) * a->ldc + head * d_head;
            for (int64_t d = 0; d < d_head; d++) out[d] = ctx[d];
        }
    }
}
