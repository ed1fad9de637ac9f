// Shared between the per-ISA kernel copies and the dispatcher; not part of the public header.
#ifndef ADAPTERD_KERNELS_INTERNAL_H
#define ADAPTERD_KERNELS_INTERNAL_H
#include "engine_kernels.h"

typedef struct {
    adk_epilogue_op op;
    float *y;
    int64_t ldy, rows, cols;
    const adk_dequantize *dequantize;
    const float *bias, *residual;
    int64_t ldr;
    const float *gamma, *beta;
    float eps;
    const adk_quantized_rows *quantized;
    /// LoRA up-projections added before the operation (`adk_epilogue_lora`), sorted by row; may be empty.
    const adk_lora_term *terms;
    int64_t term_count;
} adk_epilogue_args;

typedef struct {
    const float *qkv;
    int64_t ldqkv;
    const float *bias;
    const int32_t *starts, *lengths;
    int64_t sequences, heads, head_size;
    float scale;
    float *context;
    int64_t ldc;
    const float *rope_cos, *rope_sin;
    int64_t window;
} adk_attention_args;

typedef struct {
    const float *x;
    int64_t ldx, cols;
    float *y;
    int64_t ldy;
    const adk_quantized_rows *quantized;
} adk_geglu_args;

// Columns per weight panel of the FP32 panel GEMM (`adk_pack_panels`).
#define ADK_PANEL_WIDTH 32

typedef struct {
    int64_t rows, k;
    const float *a;
    int64_t lda;
    const float *panels;
    float *c;
    int64_t ldc;
} adk_panel_gemm_args;

// Runs body(context, first, last, thread) over [0, count) on the OpenMP team, each member claiming contiguous
// chunks until none are left (so a body may run several times on one thread), or inline when `parallel` is 0 or the
// team has one thread.
typedef void (*adk_range_body)(void *context, int64_t first, int64_t last, int thread);
void adk_parallel_for(int64_t count, int parallel, adk_range_body body, void *context);

#define ADK_DECLARE(SUFFIX)                                                                                       \
    void adk_quantize_range_##SUFFIX(const float *x, int64_t ldx, int64_t first, int64_t last, int64_t cols,     \
                                     const adk_quantized_rows *q);                                                \
    void adk_epilogue_range_##SUFFIX(const adk_epilogue_args *a, int64_t first, int64_t last);                    \
    void adk_attention_range_##SUFFIX(const adk_attention_args *a, int64_t first, int64_t last, float *scratch); \
    void adk_geglu_range_##SUFFIX(const adk_geglu_args *g, int64_t first, int64_t last);                        \
    void adk_lora_down_##SUFFIX(const float *x, int64_t ldx, int64_t rows, const float *a, int64_t rank,          \
                                int64_t in, float *t);                                                            \
    void adk_lora_up_##SUFFIX(const float *t, int64_t rows, const float *bt, int64_t rank, int64_t out, float *y, \
                              int64_t ldy);                                                                       \
    void adk_panel_gemm_range_##SUFFIX(const adk_panel_gemm_args *g, int64_t first, int64_t last);

// Calls NAME's copy for `isa` (NAME_avx512, NAME_avx2 or NAME_portable) with the given arguments. AVX-512 VNNI
// runs the AVX-512 copies (these kernels have no VNNI copy).
#if defined(__x86_64__)
#define ADK_CALL_FOR_ISA(isa, NAME, ...)                          \
    do {                                                          \
        switch (isa) {                                            \
        case ADK_ISA_AVX512_VNNI:                                 \
        case ADK_ISA_AVX512: NAME##_avx512(__VA_ARGS__); break;   \
        case ADK_ISA_AVX2: NAME##_avx2(__VA_ARGS__); break;       \
        default: NAME##_portable(__VA_ARGS__); break;             \
        }                                                         \
    } while (0)
#else
#define ADK_CALL_FOR_ISA(isa, NAME, ...) \
    do {                                 \
        (void)(isa);                     \
        NAME##_portable(__VA_ARGS__);    \
    } while (0)
#endif

ADK_DECLARE(portable)
#if defined(__x86_64__)
ADK_DECLARE(avx2)
ADK_DECLARE(avx512)
#endif
#endif
