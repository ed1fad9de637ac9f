#ifndef ADAPTERD_ENGINE_KERNELS_H
#define ADAPTERD_ENGINE_KERNELS_H
// The engine's element-wise and attention kernels: one copy compiled per instruction set (portable, AVX2+FMA,
// AVX-512), chosen at run time by the `isa` argument. Matrices are row-major float32 unless noted.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernel families, lowest first. The int8 GEMM's levels (VNNI) share the AVX-512 element-wise kernels.
typedef enum {
    ADK_ISA_PORTABLE = 0,
    ADK_ISA_AVX2 = 1,
    ADK_ISA_AVX512 = 2,
    ADK_ISA_AVX512_VNNI = 3,
} adk_isa;

/// CPU facts read with cpuid (and the OS's saved-state mask).
typedef struct {
    int avx2_fma;
    int avx512;       // F, BW, DQ, VL: the Skylake-X "core" set
    int avx512_vnni;
    int avx_vnni;
    int amx_int8;
    int amx_bf16;
    int avx512_bf16;  // VCVTNE2PS2BF16 / VDPBF16PS (Cooper Lake, Zen 4, Sapphire Rapids)
} adk_cpu_features;

/// What this CPU supports.
adk_cpu_features adk_cpu_detect(void);

/// Where a kernel writes a per-row quantised copy of its output: `q = clamp(round(x · m / scale) + zero, 0, qmax)`,
/// with `m` = `multiplier[column]`, or 1 when `multiplier` is NULL (the consumer's smoothing, see PreparedLinear).
typedef struct {
    uint8_t *data;
    int64_t ld;
    float *scale;
    int32_t *zero;
    int32_t qmax;
    const float *multiplier;
} adk_quantized_rows;

/// An int32 accumulator of `u8 activations · s8 weights` and what turns it back into floats:
/// `y[r][n] = row_scale[r] · col_scale[n] · (acc[r][n] − row_zero[r] · col_sum[n])`.
typedef struct {
    const int32_t *acc;
    int64_t ld;
    const float *row_scale;
    const int32_t *row_zero;
    const float *col_scale;
    const float *col_sum;
} adk_dequantize;

/// Epilogue operations after a product.
typedef enum {
    ADK_EPILOGUE_BIAS = 0,                 // y = v + bias
    ADK_EPILOGUE_BIAS_GELU = 1,            // y = gelu(v + bias), exact (erf) GELU
    ADK_EPILOGUE_BIAS_RESIDUAL_NORM = 2,   // y = LayerNorm(v + bias + residual)
    ADK_EPILOGUE_BIAS_RESIDUAL_PRENORM = 3,  // residual += v + bias (written back); y = LayerNorm(residual)
} adk_epilogue_op;

/// One pass over `rows × cols` after a product: `v` is `dequantize` when given (then `y` is only written), else `y`
/// itself. `bias`, `residual`, `beta` and `quantized` may be NULL. The pre-norm operation (ModernBERT's blocks) is the
/// one that writes `residual`: it keeps the residual stream there and leaves the next block's normalised input in
/// `y` (quantised when `quantized` is given). Rows are split across the OpenMP team when it pays.
void adk_epilogue(int isa, adk_epilogue_op op, float *y, int64_t ldy, int64_t rows, int64_t cols,
                  const adk_dequantize *dequantize, const float *bias, const float *residual, int64_t ldr,
                  const float *gamma, const float *beta, float eps, const adk_quantized_rows *quantized);

/// One adapter's LoRA term over a block of rows, for the fused epilogue: rows `row ..< row + rows` of the product's
/// input and output, `A` `[rank, in]`, `Bt` `[rank, cols]` with the scaling folded in, added to the output's columns
/// `col ..< col + cols`; `t` holds `rows × rank` floats (the down-projections, `adk_lora_down_terms`).
typedef struct {
    int64_t row, rows;
    const float *a, *bt;
    int64_t rank, col, cols;
    float *t;
} adk_lora_term;

/// Every term's down-projection `t = x·Aᵀ` over its rows (`in` inputs per row), in one pass of the team when the
/// rows are many.
void adk_lora_down_terms(int isa, const float *x, int64_t ldx, int64_t in, const adk_lora_term *terms, int64_t count);

/// `adk_epilogue` with LoRA up-projections fused in: each term's `t·Bt` is added to its rows and columns of `v`
/// (after the dequantisation and bias, before the operation), so that no pass over the output is spent on them.
void adk_epilogue_lora(int isa, adk_epilogue_op op, float *y, int64_t ldy, int64_t rows, int64_t cols,
                       const adk_dequantize *dequantize, const float *bias, const float *residual, int64_t ldr,
                       const float *gamma, const float *beta, float eps, const adk_quantized_rows *quantized,
                       const adk_lora_term *terms, int64_t count);

/// Quantises each row of `x` to unsigned 8 bits with its own scale and zero point.
void adk_quantize_rows(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                       const adk_quantized_rows *quantized);

/// Self-attention for packed sequences, every head: `qkv` holds Q | K | V (each `heads · head_size` wide) per
/// row, `bias` (NULL or `3 · heads · head_size`) is added to them; `context` receives softmax(QKᵀ·scale)·V.
/// Sequence `s` covers rows `starts[s] ..< starts[s] + lengths[s]`. (sequence, head) pairs run across the team.
/// With `rope_cos` and `rope_sin` (`[positions, head_size]`, row p for the sequence's p-th token), Q and K are
/// rotated first (rotary embeddings, the rotate-half convention of Hugging Face's models); with `window` above 0, a
/// token attends only to tokens at most `window` positions away (bidirectional sliding window).
void adk_attention(int isa, const float *qkv, int64_t ldqkv, const float *bias, const int32_t *starts,
                   const int32_t *lengths, int64_t sequences, int64_t heads, int64_t head_size, float scale,
                   float *context, int64_t ldc, const float *rope_cos, const float *rope_sin, int64_t window);

/// A gated GELU (GeGLU) over `rows` rows of `x`, each `2 · cols` wide (input | gate):
/// `y[r][i] = gelu(x[r][i]) · x[r][cols + i]`, exact (erf) GELU, and each row of `y` quantised when `quantized` is
/// given.
void adk_geglu(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, float *y, int64_t ldy,
               const adk_quantized_rows *quantized);

/// Per-output-channel symmetric int8 weights in −qmax…qmax for `x · Wᵀ`: `w` is `[out, in]`; writes `wq` as
/// `[in, out]` (the layout the int8 GEMM reads fastest), `scale[out]` and `col_sum[out]` (Σ over `in` of `wq`).
void adk_quantize_weights(const float *w, int64_t out, int64_t in, int32_t qmax, int8_t *wq, float *scale,
                          int32_t *col_sum);

/// One adapter's LoRA terms over rows `row ..< row + rows` of `adk_lora_groups`'s `x`: `y1 += (x·A1ᵀ)·Bt1` and, when
/// `rank2` is above 0, `y2 += (x·A2ᵀ)·Bt2` (a layer's query and value read the same rows). `A` is `[rank, in]`, `Bt`
/// `[rank, out]` with the scaling folded in; `y1` and `y2` point at the group's first row; `t1` and `t2` hold
/// `rows × rank` floats of scratch each.
typedef struct {
    int64_t row, rows;
    const float *a1, *bt1;
    int64_t rank1;
    float *y1, *t1;
    const float *a2, *bt2;
    int64_t rank2;
    float *y2, *t2;
} adk_lora_group;

/// Adds every group's LoRA terms in one pass of the team, their eight-row blocks split across it (on the calling
/// thread below 32 rows in all). For the small products of adapters' rows, where a BLAS call's fixed cost is most
/// of the time; a mixed batch's adapters share the pass. Outputs' rows are `ldy` apart.
void adk_lora_groups(int isa, const float *x, int64_t ldx, int64_t in, int64_t out, int64_t ldy,
                     const adk_lora_group *groups, int64_t count);

/// An INT8 product's bias epilogue (`y = dequantize + bias` over `rows × cols`) followed by two LoRA terms over the
/// same rows `x`, as one group of `adk_lora_groups`: below 32 rows the terms' down-projections (which read only `x` and A) run on
/// a second thread while the first dequantises, and the up-projections follow on the first.
void adk_dequantize_lora_pair(int isa, float *y, int64_t ldy, int64_t rows, int64_t cols, const adk_dequantize *dequantize,
                              const float *bias, const float *x, int64_t ldx, int64_t in, int64_t out,
                              const float *a1, const float *bt1, int64_t rank1, float *y1, float *t1,
                              const float *a2, const float *bt2, int64_t rank2, float *y2, float *t2);

/// Columns per panel of `adk_pack_panels`: a weight matrix's column count must be a multiple of this.
int64_t adk_panel_width(void);

/// Packs `weights[k × n]` (row-major, `n` a multiple of `adk_panel_width()`) into `panels[k × n]`: panel after
/// panel of `adk_panel_width()` columns, each `k` rows of them in order, the layout `adk_panel_gemm` streams.
void adk_pack_panels(const float *weights, int64_t k, int64_t n, float *panels);

/// The inverse of `adk_pack_panels`: `W[k × n]` row-major, in a buffer of the calling thread's that stays valid
/// until its next call; NULL when no memory was left.
const float *adk_unpack_panels(const float *panels, int64_t k, int64_t n);

/// `c[rows × n] = a[rows × k] · W` (no bias) for `W[k × n]` packed by `adk_pack_panels`; `a`'s rows are `lda`
/// apart and `c`'s `ldc`. Splits the panels across the OpenMP team when the product is large enough.
void adk_panel_gemm(int isa, int64_t rows, int64_t k, int64_t n, const float *a, int64_t lda, const float *panels,
                    float *c, int64_t ldc);

/// `destination[c][r] = source[r][c]` for a `rows × cols` source; destination rows are `ld` apart.
void adk_transpose(const float *source, int64_t rows, int64_t cols, float *destination, int64_t ld);

/// Makes the calling thread's next oneDNN products and kernels run on it alone; returns the team size to restore
/// with `adk_end_sequential`. For products too small to pay for waking the team (LoRA terms, heads).
int adk_begin_sequential(void);

/// Restores the team size `adk_begin_sequential` returned.
void adk_end_sequential(int threads);

/// Converts `rows × cols` floats of `x` to bfloat16 in `y`, rounding to nearest even (denormals become zeros); with
/// `native` and a CPU with AVX-512 BF16, by its conversion instruction (the same bits). Rows are split across the
/// OpenMP team when it pays.
void adk_convert_bf16(int native, const float *x, int64_t ldx, int64_t rows, int64_t cols, uint16_t *y, int64_t ldy);

/// Hands the allocator's free memory back to the system (glibc keeps freed heap memory otherwise); a no-op
/// elsewhere. For after a large one-off preparation (an adapter merged into copies of its layers).
void adk_release_free_memory(void);

/// Threads in the OpenMP team the kernels (and oneDNN) use.
int adk_team_size(void);

#ifdef __cplusplus
}
#endif
#endif
