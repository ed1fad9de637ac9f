// Public entry points: CPU detection, the choice of kernel copy for an `adk_isa`, and splitting work across the
// OpenMP team. The team is libgomp's, the runtime Debian's oneDNN is built with, so the kernels and the GEMMs
// share one set of threads instead of two pools spinning against each other on a small CPU.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

// libgomp's entry point for `#pragma omp parallel` (its stable ABI since GCC 4.9) and the team queries; declared
// here because the Swift toolchain's clang does not ship libgomp's omp.h.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);

adk_cpu_features adk_cpu_detect(void) {
    adk_cpu_features f;
    memset(&f, 0, sizeof f);
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return f;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const int ymm_state = (xcr0_lo & 0x6) == 0x6;
    const int zmm_state = ymm_state && (xcr0_lo & 0xe0) == 0xe0;
    const int tile_state = ((xcr0_lo >> 17) & 3) == 3;
    if (!ymm_state) return f;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int avx512vnni = (c >> 11) & 1;
    const int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
    f.avx2_fma = avx2 && fma;
    f.avx512 = f.avx2_fma && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
    f.avx512_vnni = f.avx512 && avx512vnni;
    f.amx_int8 = amx_tile && amx_int8 && tile_state;
    f.amx_bf16 = amx_tile && amx_bf16 && tile_state;
    unsigned eax1, ebx1, ecx1, edx1;
    __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
    f.avx_vnni = f.avx2_fma && ((eax1 >> 4) & 1);
    f.avx512_bf16 = f.avx512 && ((eax1 >> 5) & 1);
#endif
    return f;
}

int adk_team_size(void) { return omp_get_max_threads(); }

typedef struct {
    adk_range_body body;
    void *context;
    int64_t count;
    int64_t next;  // the first item not yet handed out (atomic)
} adk_parallel_job;

// Hands out the items in shrinking chunks (OpenMP's guided schedule): half of what is left, divided among the team,
// at each claim. On this kind of VM one vCPU can run 20-40% slower than the other for minutes at a time; with a fixed
// half each, the faster thread then waited at the barrier for up to a quarter of the pass (and ONNX Runtime's
// work-stealing pool did not), while the first large chunks keep the claims few when both run alike.
static void adk_parallel_trampoline(void *data) {
    adk_parallel_job *job = data;
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    int64_t first = __atomic_load_n(&job->next, __ATOMIC_RELAXED);
    for (;;) {
        if (first >= job->count) return;
        int64_t chunk = (job->count - first) / (2 * threads);
        if (chunk < 1) chunk = 1;
        if (__atomic_compare_exchange_n(&job->next, &first, first + chunk, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            job->body(job->context, first, first + chunk, (int)me);
            first = __atomic_load_n(&job->next, __ATOMIC_RELAXED);
        }
    }
}

void adk_parallel_for(int64_t count, int parallel, adk_range_body body, void *context) {
    if (!parallel || count < 2 || omp_get_max_threads() < 2) {
        body(context, 0, count, 0);
        return;
    }
    adk_parallel_job job = {body, context, count, 0};
    GOMP_parallel(adk_parallel_trampoline, &job, 0, 0);
}

// Rows × columns below which one thread finishes before a second would start.
static const int64_t adk_parallel_elements = 32 * 1024;

typedef struct {
    int isa;
    const adk_epilogue_args *args;
} adk_epilogue_context;

static void adk_epilogue_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_epilogue_context *c = context;
    ADK_CALL_FOR_ISA(c->isa, adk_epilogue_range, c->args, first, last);
}

void adk_epilogue(int isa, adk_epilogue_op op, float *y, int64_t ldy, int64_t rows, int64_t cols,
                  const adk_dequantize *dequantize, const float *bias, const float *residual, int64_t ldr,
                  const float *gamma, const float *beta, float eps, const adk_quantized_rows *quantized) {
    adk_epilogue_lora(isa, op, y, ldy, rows, cols, dequantize, bias, residual, ldr, gamma, beta, eps, quantized, NULL, 0);
}

void adk_epilogue_lora(int isa, adk_epilogue_op op, float *y, int64_t ldy, int64_t rows, int64_t cols,
                       const adk_dequantize *dequantize, const float *bias, const float *residual, int64_t ldr,
                       const float *gamma, const float *beta, float eps, const adk_quantized_rows *quantized,
                       const adk_lora_term *terms, int64_t count) {
    adk_epilogue_args args = {op, y, ldy, rows, cols, dequantize, bias, residual, ldr, gamma, beta, eps, quantized, terms, count};
    adk_epilogue_context context = {isa, &args};
    // A term's rank multiply-adds per output weigh like about a quarter of the epilogue's own work each.
    int64_t work = rows * cols;
    for (int64_t k = 0; k < count; k++) work += terms[k].rows * terms[k].cols * terms[k].rank / 4;
    adk_parallel_for(rows, work >= adk_parallel_elements, adk_epilogue_body, &context);
}

typedef struct {
    int isa;
    const float *x;
    int64_t ldx, cols;
    const adk_quantized_rows *q;
} adk_quantize_context;

static void adk_quantize_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_quantize_context *c = context;
    ADK_CALL_FOR_ISA(c->isa, adk_quantize_range, c->x, c->ldx, first, last, c->cols, c->q);
}

void adk_quantize_rows(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                       const adk_quantized_rows *quantized) {
    adk_quantize_context context = {isa, x, ldx, cols, quantized};
    adk_parallel_for(rows, rows * cols >= adk_parallel_elements, adk_quantize_body, &context);
}

typedef struct {
    int isa;
    const adk_attention_args *args;
    int64_t scratch_floats;
} adk_attention_context;

static void adk_attention_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_attention_context *c = context;
    float *scratch = malloc((size_t)c->scratch_floats * sizeof(float));
    if (!scratch) abort();
    ADK_CALL_FOR_ISA(c->isa, adk_attention_range, c->args, first, last, scratch);
    free(scratch);
}

void adk_attention(int isa, const float *qkv, int64_t ldqkv, const float *bias, const int32_t *starts,
                   const int32_t *lengths, int64_t sequences, int64_t heads, int64_t head_size, float scale,
                   float *context, int64_t ldc, const float *rope_cos, const float *rope_sin, int64_t window) {
    int64_t longest = 0, work = 0;
    for (int64_t s = 0; s < sequences; s++) {
        if (lengths[s] > longest) longest = lengths[s];
        work += (int64_t)lengths[s] * lengths[s];
    }
    adk_attention_args args = {qkv, ldqkv, bias, starts, lengths, sequences, heads, head_size, scale, context, ldc,
                               rope_cos, rope_sin, window};
    // Per job: Q, Kᵀ, V, the probabilities, a zero bias and the rows' inverse sums, padded to whole 16-float vectors
    // and 8-row blocks.
    const int64_t lp = (longest + 15) / 16 * 16 + 16, dp = (head_size + 15) / 16 * 16;
    // (and a rotated row for rotary embeddings).
    adk_attention_context c = {isa, &args, 3 * lp * dp + lp * lp + 2 * dp + lp + 64};
    adk_parallel_for(sequences * heads, work * heads * head_size >= 64 * 1024, adk_attention_body, &c);
}

typedef struct {
    int isa;
    const adk_geglu_args *args;
} adk_geglu_context;

static void adk_geglu_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_geglu_context *c = context;
    ADK_CALL_FOR_ISA(c->isa, adk_geglu_range, c->args, first, last);
}

void adk_geglu(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, float *y, int64_t ldy,
               const adk_quantized_rows *quantized) {
    adk_geglu_args args = {x, ldx, cols, y, ldy, quantized};
    adk_geglu_context context = {isa, &args};
    adk_parallel_for(rows, rows * cols >= adk_parallel_elements, adk_geglu_body, &context);
}

static void adk_lora_down_isa(int isa, const float *x, int64_t ldx, int64_t rows, const float *a, int64_t rank,
                              int64_t in, float *t) {
    ADK_CALL_FOR_ISA(isa, adk_lora_down, x, ldx, rows, a, rank, in, t);
}

static void adk_lora_up_isa(int isa, const float *t, int64_t rows, const float *bt, int64_t rank, int64_t out,
                            float *y, int64_t ldy) {
    ADK_CALL_FOR_ISA(isa, adk_lora_up, t, rows, bt, rank, out, y, ldy);
}

// One LoRA term over `rows` rows on the calling thread: t = x·Aᵀ, then y += t·Bt.
static void adk_lora_isa(int isa, const float *x, int64_t ldx, int64_t rows, const float *a, const float *bt,
                         int64_t rank, int64_t in, int64_t out, float *y, int64_t ldy, float *t) {
    adk_lora_down_isa(isa, x, ldx, rows, a, rank, in, t);
    adk_lora_up_isa(isa, t, rows, bt, rank, out, y, ldy);
}

typedef struct {
    int isa;
    const float *x;
    int64_t ldx, in, out, ldy;
    const adk_lora_group *groups;
} adk_lora_groups_context;

// A group's eight-row blocks (the last one may be shorter): the units the team's threads claim.
static int64_t adk_lora_blocks(const adk_lora_group *g) { return (g->rows + 7) / 8; }

// Runs blocks [first, last) of the groups' blocks laid end to end: each group's share of them, both of its terms.
static void adk_lora_groups_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_lora_groups_context *c = context;
    int64_t group = 0, base = 0;  // `base`: the first block of `group`
    while (base + adk_lora_blocks(&c->groups[group]) <= first) base += adk_lora_blocks(&c->groups[group++]);
    while (base < last) {
        const adk_lora_group *g = &c->groups[group++];
        const int64_t blocks = adk_lora_blocks(g);
        const int64_t end = last - base < blocks ? last - base : blocks;
        const int64_t from = (first > base ? first - base : 0) * 8, to = end * 8 < g->rows ? end * 8 : g->rows;
        base += blocks;
        if (to <= from) continue;
        const float *x = c->x + (g->row + from) * c->ldx;
        adk_lora_isa(c->isa, x, c->ldx, to - from, g->a1, g->bt1, g->rank1, c->in, c->out, g->y1 + from * c->ldy, c->ldy,
                     g->t1 + from * g->rank1);
        if (g->rank2 > 0) {
            adk_lora_isa(c->isa, x, c->ldx, to - from, g->a2, g->bt2, g->rank2, c->in, c->out, g->y2 + from * c->ldy,
                         c->ldy, g->t2 + from * g->rank2);
        }
    }
}

void adk_lora_groups(int isa, const float *x, int64_t ldx, int64_t in, int64_t out, int64_t ldy,
                     const adk_lora_group *groups, int64_t count) {
    int64_t blocks = 0, rows = 0;
    for (int64_t g = 0; g < count; g++) blocks += adk_lora_blocks(&groups[g]), rows += groups[g].rows;
    adk_lora_groups_context c = {isa, x, ldx, in, out, ldy, groups};
    // Below 32 rows the terms run on this thread: the epilogue that wrote these rows of the product ran here too
    // (fewer than adk_parallel_elements values), and a second core fetching half of them from this one's cache cost
    // more than its share of the multiply-adds saved (INT8 LoRA overhead at 16 rows: 7.8-8.1% split, 6.2-7.8% here).
    // A mixed batch's groups share one pass of the team: 32 adapters of one row block each were 32 passes before.
    if (blocks > 0) adk_parallel_for(blocks, rows >= 32, adk_lora_groups_body, &c);
}

typedef struct {
    int isa;
    const float *x;
    int64_t ldx, in;
    const adk_lora_term *terms;
    int64_t count;
} adk_lora_down_context;

// Runs blocks [first, last) of the terms' eight-row blocks laid end to end.
static void adk_lora_down_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_lora_down_context *c = context;
    int64_t base = 0;
    for (int64_t k = 0; k < c->count && base < last; k++) {
        const adk_lora_term *term = &c->terms[k];
        const int64_t blocks = (term->rows + 7) / 8;
        const int64_t from = (first > base ? first - base : 0) * 8;
        const int64_t end = (last - base < blocks ? last - base : blocks) * 8;
        const int64_t to = end < term->rows ? end : term->rows;
        base += blocks;
        if (to <= from) continue;
        adk_lora_down_isa(c->isa, c->x + (term->row + from) * c->ldx, c->ldx, to - from, term->a, term->rank, c->in,
                          term->t + from * term->rank);
    }
}

void adk_lora_down_terms(int isa, const float *x, int64_t ldx, int64_t in, const adk_lora_term *terms, int64_t count) {
    int64_t blocks = 0, work = 0;
    for (int64_t k = 0; k < count; k++) blocks += (terms[k].rows + 7) / 8, work += terms[k].rows * terms[k].rank * in;
    adk_lora_down_context c = {isa, x, ldx, in, terms, count};
    if (blocks > 0) adk_parallel_for(blocks, work >= 8 * adk_parallel_elements, adk_lora_down_body, &c);
}

typedef struct {
    int isa;
    const adk_epilogue_args *epilogue;
    const float *x;
    int64_t ldx, rows, in;
    const float *a[2];
    int64_t rank[2];
    float *t[2];
} adk_overlap_context;

// Thread 0 runs the epilogue; thread 1 (or thread 0 after it, in a team of one) the two down-projections, which
// read only x and A.
static void adk_overlap_body(void *data) {
    const adk_overlap_context *c = data;
    const int threads = omp_get_num_threads(), me = omp_get_thread_num();
    if (me == 0) adk_epilogue_body(&(adk_epilogue_context){c->isa, c->epilogue}, 0, c->rows, 0);
    if (me == (threads > 1 ? 1 : 0)) {
        for (int term = 0; term < 2; term++) adk_lora_down_isa(c->isa, c->x, c->ldx, c->rows, c->a[term], c->rank[term], c->in, c->t[term]);
    }
}

void adk_dequantize_lora_pair(int isa, float *y, int64_t ldy, int64_t rows, int64_t cols, const adk_dequantize *dequantize,
                              const float *bias, const float *x, int64_t ldx, int64_t in, int64_t out,
                              const float *a1, const float *bt1, int64_t rank1, float *y1, float *t1,
                              const float *a2, const float *bt2, int64_t rank2, float *y2, float *t2) {
    if (rows >= 32 || omp_get_max_threads() < 2) {
        adk_epilogue(isa, ADK_EPILOGUE_BIAS, y, ldy, rows, cols, dequantize, bias, NULL, 0, NULL, NULL, 0.0f, NULL);
        const adk_lora_group group = {0, rows, a1, bt1, rank1, y1, t1, a2, bt2, rank2, y2, t2};
        adk_lora_groups(isa, x, ldx, in, out, ldy, &group, 1);
        return;
    }
    adk_epilogue_args args = {ADK_EPILOGUE_BIAS, y, ldy, rows, cols, dequantize, bias, NULL, 0, NULL, NULL, 0.0f, NULL, NULL, 0};
    adk_overlap_context c = {isa, &args, x, ldx, rows, in, {a1, a2}, {rank1, rank2}, {t1, t2}};
    GOMP_parallel(adk_overlap_body, &c, 2, 0);
    // The up-projections add to rows the epilogue just wrote, on its core.
    adk_lora_up_isa(isa, t1, rows, bt1, rank1, out, y1, ldy);
    adk_lora_up_isa(isa, t2, rows, bt2, rank2, out, y2, ldy);
}

void adk_quantize_weights(const float *w, int64_t out, int64_t in, int32_t qmax, int8_t *wq, float *scale, int32_t *col_sum) {
    for (int64_t o = 0; o < out; o++) {
        const float *row = w + o * in;
        float largest = 0.0f;
        for (int64_t i = 0; i < in; i++) {
            float magnitude = row[i] < 0 ? -row[i] : row[i];
            if (magnitude > largest) largest = magnitude;
        }
        const float s = largest > 0.0f ? largest / (float)qmax : 1.0f;
        int32_t sum = 0;
        for (int64_t i = 0; i < in; i++) {
            float v = row[i] / s;
            int32_t q = (int32_t)(v < 0 ? v - 0.5f : v + 0.5f);
            if (q > qmax) q = qmax;
            if (q < -qmax) q = -qmax;
            wq[i * out + o] = (int8_t)q;
            sum += q;
        }
        scale[o] = s;
        col_sum[o] = sum;
    }
}

void adk_transpose(const float *source, int64_t rows, int64_t cols, float *destination, int64_t ld) {
    // 32 × 32 tiles keep both sides in cache.
    for (int64_t r0 = 0; r0 < rows; r0 += 32) {
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            const int64_t r1 = r0 + 32 < rows ? r0 + 32 : rows, c1 = c0 + 32 < cols ? c0 + 32 : cols;
            for (int64_t r = r0; r < r1; r++) {
                for (int64_t c = c0; c < c1; c++) destination[c * ld + r] = source[r * cols + c];
            }
        }
    }
}

extern void omp_set_num_threads(int threads);

int adk_begin_sequential(void) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    return threads;
}

void adk_end_sequential(int threads) { omp_set_num_threads(threads); }

#if defined(__GLIBC__)
#include <malloc.h>
void adk_release_free_memory(void) { malloc_trim(0); }
#else
void adk_release_free_memory(void) {}
#endif
