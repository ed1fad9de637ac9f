// The FP32 panel GEMM's packing and its split across the OpenMP team; the kernels are in panel_gemm_impl.h.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"

int64_t adk_panel_width(void) { return ADK_PANEL_WIDTH; }

void adk_pack_panels(const float *weights, int64_t k, int64_t n, float *panels) {
    for (int64_t panel = 0; panel < n / ADK_PANEL_WIDTH; panel++) {
        float *p = panels + panel * k * ADK_PANEL_WIDTH;
        for (int64_t i = 0; i < k; i++) {
            memcpy(p + i * ADK_PANEL_WIDTH, weights + i * n + panel * ADK_PANEL_WIDTH, ADK_PANEL_WIDTH * sizeof(float));
        }
    }
}

const float *adk_unpack_panels(const float *panels, int64_t k, int64_t n) {
    // One buffer per thread, kept for the next call: a fresh one would fault its pages in on every product.
    static __thread float *buffer;
    static __thread int64_t capacity;
    if (capacity < k * n) {
        free(buffer);
        buffer = malloc((size_t)(k * n) * sizeof(float));
        capacity = buffer ? k * n : 0;
        if (!buffer) return NULL;
    }
    float *weights = buffer;
    for (int64_t panel = 0; panel < n / ADK_PANEL_WIDTH; panel++) {
        const float *p = panels + panel * k * ADK_PANEL_WIDTH;
        for (int64_t i = 0; i < k; i++) {
            memcpy(weights + i * n + panel * ADK_PANEL_WIDTH, p + i * ADK_PANEL_WIDTH, ADK_PANEL_WIDTH * sizeof(float));
        }
    }
    return weights;
}

typedef struct {
    int isa;
    const adk_panel_gemm_args *args;
} adk_panel_gemm_context;

static void adk_panel_gemm_body(void *context, int64_t first, int64_t last, int thread) {
    (void)thread;
    const adk_panel_gemm_context *c = context;
    ADK_CALL_FOR_ISA(c->isa, adk_panel_gemm_range, c->args, first, last);
}

// Multiply-adds below which one thread finishes before a second would start (a 1-row × 384 × 384 product).
static const int64_t adk_panel_gemm_parallel_work = 256 * 1024;

void adk_panel_gemm(int isa, int64_t rows, int64_t k, int64_t n, const float *a, int64_t lda, const float *panels,
                    float *c, int64_t ldc) {
    if (rows <= 0 || n <= 0) return;
    adk_panel_gemm_args args = {rows, k, a, lda, panels, c, ldc};
    adk_panel_gemm_context context = {isa, &args};
    adk_parallel_for(n / ADK_PANEL_WIDTH, rows * k * n >= adk_panel_gemm_parallel_work, adk_panel_gemm_body, &context);
}
