// The LoRA terms' kernels, one copy per instruction set: included by kernels_impl.h (not on its own), with its
// vector type VF, ADK_VW and ADK_FN already defined, before the epilogue that calls adk_lora_up.

// Rows the LoRA kernel keeps in registers at once: four with AVX-512's 32 vector registers, two with 16.
#ifndef ADK_LORA_ROWS
#if ADK_VW == 16
#define ADK_LORA_ROWS 4
#else
#define ADK_LORA_ROWS 2
#endif
#endif

void ADK_FN(adk_lora_down)(const float *x, int64_t ldx, int64_t rows, const float *a, int64_t rank, int64_t in,
                           float *t) {
    // t = x·Aᵀ: ADK_LORA_ROWS rows and four ranks at a time, so that each loaded A vector serves several rows and
    // each x vector four ranks; the last rows go one at a time.
    int64_t first_single = 0;
    if (rank % 4 == 0 && in % ADK_VW == 0) {
        for (; first_single + ADK_LORA_ROWS <= rows; first_single += ADK_LORA_ROWS) {
            for (int64_t k = 0; k < rank; k += 4) {
                const float *restrict a0 = a + k * in, *restrict a1 = a0 + in, *restrict a2 = a1 + in, *restrict a3 = a2 + in;
                VF acc[ADK_LORA_ROWS][4];
                for (int r = 0; r < ADK_LORA_ROWS; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = (VF)0.0f;
                for (int64_t i = 0; i < in; i += ADK_VW) {
                    const VF w0 = ADK_FN(adk_load)(a0 + i), w1 = ADK_FN(adk_load)(a1 + i);
                    const VF w2 = ADK_FN(adk_load)(a2 + i), w3 = ADK_FN(adk_load)(a3 + i);
                    for (int r = 0; r < ADK_LORA_ROWS; r++) {
                        const VF v = ADK_FN(adk_load)(x + (first_single + r) * ldx + i);
                        acc[r][0] += v * w0, acc[r][1] += v * w1, acc[r][2] += v * w2, acc[r][3] += v * w3;
                    }
                }
                for (int r = 0; r < ADK_LORA_ROWS; r++) {
                    float *restrict tr = t + (first_single + r) * rank + k;
                    for (int j = 0; j < 4; j++) tr[j] = ADK_FN(adk_hsum_halving)(acc[r][j]);
                }
            }
        }
    }
    for (int64_t r = first_single; r < rows; r++) {
        const float *restrict xr = x + r * ldx;
        float *restrict tr = t + r * rank;
        int64_t k = 0;
        for (; k + 4 <= rank; k += 4) {
            const float *restrict a0 = a + k * in, *restrict a1 = a0 + in, *restrict a2 = a1 + in, *restrict a3 = a2 + in;
            VF s0 = (VF)0.0f, s1 = (VF)0.0f, s2 = (VF)0.0f, s3 = (VF)0.0f;
            int64_t i = 0;
            for (; i + ADK_VW <= in; i += ADK_VW) {
                const VF v = ADK_FN(adk_load)(xr + i);
                s0 += v * ADK_FN(adk_load)(a0 + i);
                s1 += v * ADK_FN(adk_load)(a1 + i);
                s2 += v * ADK_FN(adk_load)(a2 + i);
                s3 += v * ADK_FN(adk_load)(a3 + i);
            }
            float d0 = ADK_FN(adk_hsum_halving)(s0), d1 = ADK_FN(adk_hsum_halving)(s1), d2 = ADK_FN(adk_hsum_halving)(s2), d3 = ADK_FN(adk_hsum_halving)(s3);
            for (; i < in; i++) {
                d0 += xr[i] * a0[i];
                d1 += xr[i] * a1[i];
                d2 += xr[i] * a2[i];
                d3 += xr[i] * a3[i];
            }
            tr[k] = d0, tr[k + 1] = d1, tr[k + 2] = d2, tr[k + 3] = d3;
        }
        for (; k < rank; k++) {
            const float *restrict ak = a + k * in;
            VF s0 = (VF)0.0f;
            int64_t i = 0;
            for (; i + ADK_VW <= in; i += ADK_VW) s0 += ADK_FN(adk_load)(xr + i) * ADK_FN(adk_load)(ak + i);
            float d = ADK_FN(adk_hsum_halving)(s0);
            for (; i < in; i++) d += xr[i] * ak[i];
            tr[k] = d;
        }
    }
}

void ADK_FN(adk_lora_up)(const float *t, int64_t rows, const float *bt, int64_t rank, int64_t out, float *y,
                         int64_t ldy) {
    // y += t·Bt: each output vector loaded and stored once, rank multiply-adds in between, four vectors at a time so
    // that the multiply-adds of one vector do not wait on each other; ADK_LORA_ROWS rows at a time where whole
    // vectors cover the outputs, so that each loaded Bt vector serves all of them.
    int64_t first_up = 0;
    if (out % (4 * ADK_VW) == 0) {
        for (; first_up + ADK_LORA_ROWS <= rows; first_up += ADK_LORA_ROWS) {
            for (int64_t o = 0; o < out; o += 4 * ADK_VW) {
                VF acc[ADK_LORA_ROWS][4];
                for (int r = 0; r < ADK_LORA_ROWS; r++) {
                    for (int v = 0; v < 4; v++) acc[r][v] = ADK_FN(adk_load)(y + (first_up + r) * ldy + o + v * ADK_VW);
                }
                for (int64_t j = 0; j < rank; j++) {
                    const float *restrict b = bt + j * out + o;
                    const VF b0 = ADK_FN(adk_load)(b), b1 = ADK_FN(adk_load)(b + ADK_VW);
                    const VF b2 = ADK_FN(adk_load)(b + 2 * ADK_VW), b3 = ADK_FN(adk_load)(b + 3 * ADK_VW);
                    for (int r = 0; r < ADK_LORA_ROWS; r++) {
                        const float u = t[(first_up + r) * rank + j];
                        acc[r][0] += u * b0, acc[r][1] += u * b1, acc[r][2] += u * b2, acc[r][3] += u * b3;
                    }
                }
                for (int r = 0; r < ADK_LORA_ROWS; r++) {
                    for (int v = 0; v < 4; v++) ADK_FN(adk_store)(y + (first_up + r) * ldy + o + v * ADK_VW, acc[r][v]);
                }
            }
        }
    }
    for (int64_t r = first_up; r < rows; r++) {
        const float *restrict tr = t + r * rank;
        float *restrict yr = y + r * ldy;
        int64_t o = 0;
        for (; o + 4 * ADK_VW <= out; o += 4 * ADK_VW) {
            VF a0 = ADK_FN(adk_load)(yr + o), a1 = ADK_FN(adk_load)(yr + o + ADK_VW);
            VF a2 = ADK_FN(adk_load)(yr + o + 2 * ADK_VW), a3 = ADK_FN(adk_load)(yr + o + 3 * ADK_VW);
            for (int64_t j = 0; j < rank; j++) {
                const float *restrict b = bt + j * out + o;
                const float tj = tr[j];
                a0 += tj * ADK_FN(adk_load)(b);
                a1 += tj * ADK_FN(adk_load)(b + ADK_VW);
                a2 += tj * ADK_FN(adk_load)(b + 2 * ADK_VW);
                a3 += tj * ADK_FN(adk_load)(b + 3 * ADK_VW);
            }
            ADK_FN(adk_store)(yr + o, a0);
            ADK_FN(adk_store)(yr + o + ADK_VW, a1);
            ADK_FN(adk_store)(yr + o + 2 * ADK_VW, a2);
            ADK_FN(adk_store)(yr + o + 3 * ADK_VW, a3);
        }
        for (; o + ADK_VW <= out; o += ADK_VW) {
            VF acc = ADK_FN(adk_load)(yr + o);
            for (int64_t j = 0; j < rank; j++) acc += tr[j] * ADK_FN(adk_load)(bt + j * out + o);
            ADK_FN(adk_store)(yr + o, acc);
        }
        for (; o < out; o++) {
            float acc = yr[o];
            for (int64_t j = 0; j < rank; j++) acc += tr[j] * bt[j * out + o];
            yr[o] = acc;
        }
    }
}

