// The attention kernel's body, included by kernels_impl.h once per instruction set (with its vector type and
// helpers in scope): scores, softmax and context per (sequence, head), with rotary embeddings and a sliding window
// when the model has them.
// Rows of the score and context products computed together, so that each loaded K or V vector serves eight rows.
#define ADK_ROWS 8

void ADK_FN(adk_attention_range)(const adk_attention_args *a, int64_t first, int64_t last, float *scratch) {
    const int64_t d_head = a->head_size;
    const int64_t width = a->heads * d_head;
    for (int64_t job = first; job < last; job++) {
        const int64_t sequence = job / a->heads;
        const int64_t head = job % a->heads;
        const int64_t length = a->lengths[sequence];
        const int64_t start = a->starts[sequence];
        // Padded to whole vectors; the padding is zero in K and V and −∞ → 0 in the probabilities.
        const int64_t lp = (length + ADK_VW - 1) / ADK_VW * ADK_VW;
        const int64_t dp = (d_head + ADK_VW - 1) / ADK_VW * ADK_VW;
        const int64_t rows_padded = (length + ADK_ROWS - 1) / ADK_ROWS * ADK_ROWS;
        float *restrict qs = scratch;                    // [rows_padded, d_head], scaled
        float *restrict kt = qs + rows_padded * d_head;  // [d_head, lp]
        float *restrict vs = kt + d_head * lp;           // [lp, dp]
        float *restrict p = vs + lp * dp;                // [rows_padded, lp]
        const float *qb = a->bias ? a->bias + head * d_head : NULL;
        const float *kb = a->bias ? a->bias + width + head * d_head : NULL;
        const float *vb = a->bias ? a->bias + 2 * width + head * d_head : NULL;
        float *restrict zeros = p + rows_padded * lp;    // [d_head]: the bias when there is none
        float *restrict inverse_sums = zeros + d_head;   // [rows_padded]: 1 / each row's softmax sum
        memset(zeros, 0, (size_t)d_head * sizeof(float));
        if (!qb) qb = kb = vb = zeros;
        memset(kt, 0, (size_t)(d_head * lp) * sizeof(float));
        memset(vs, 0, (size_t)(lp * dp) * sizeof(float));
        memset(qs + length * d_head, 0, (size_t)((rows_padded - length) * d_head) * sizeof(float));
        // Q and V row by row (contiguous, so vectorised), then K transposed column by column.
        for (int64_t j = 0; j < length; j++) {
            const float *restrict row = a->qkv + (start + j) * a->ldqkv + head * d_head;
            float *restrict q = qs + j * d_head;
            float *restrict v = vs + j * dp;
            for (int64_t d = 0; d < d_head; d++) q[d] = (row[d] + qb[d]) * a->scale;
            for (int64_t d = 0; d < d_head; d++) v[d] = row[2 * width + d] + vb[d];
        }
        const float *restrict keys = a->qkv + start * a->ldqkv + width + head * d_head;
        if (a->rope_cos) {
            // Rotary embeddings: x·cos + rotate_half(x)·sin, rotate_half(x) = (−x₂, x₁) over the two halves. Q is
            // rotated in place (the scale is linear, so it commutes); K row by row into a scratch row, then transposed.
            const int64_t half = d_head / 2;
            float *restrict rotated = inverse_sums + rows_padded;  // [d_head]
            for (int64_t j = 0; j < length; j++) {
                const float *restrict c = a->rope_cos + j * d_head;
                const float *restrict sn = a->rope_sin + j * d_head;
                float *restrict q = qs + j * d_head;
                for (int64_t d = 0; d < half; d++) rotated[d] = q[d] * c[d] - q[d + half] * sn[d];
                for (int64_t d = half; d < d_head; d++) rotated[d] = q[d] * c[d] + q[d - half] * sn[d];
                memcpy(q, rotated, (size_t)d_head * sizeof(float));
                const float *restrict k = keys + j * a->ldqkv;
                for (int64_t d = 0; d < half; d++) rotated[d] = (k[d] + kb[d]) * c[d] - (k[d + half] + kb[d + half]) * sn[d];
                for (int64_t d = half; d < d_head; d++) rotated[d] = (k[d] + kb[d]) * c[d] + (k[d - half] + kb[d - half]) * sn[d];
                for (int64_t d = 0; d < d_head; d++) kt[d * lp + j] = rotated[d];
            }
        } else {
            for (int64_t d = 0; d < d_head; d++) {
                float *restrict column = kt + d * lp;
                const float b = kb[d];
                for (int64_t j = 0; j < length; j++) column[j] = keys[j * a->ldqkv + d] + b;
            }
        }
        // Scores: p[i][j] = Σ_d qs[i][d] · kt[d][j], eight rows at a time.
        for (int64_t i = 0; i < rows_padded; i += ADK_ROWS) {
            for (int64_t j = 0; j < lp; j += ADK_VW) {
                VF acc[ADK_ROWS];
                for (int r = 0; r < ADK_ROWS; r++) acc[r] = (VF)0.0f;
                for (int64_t d = 0; d < d_head; d++) {
                    const VF k = ADK_FN(adk_load)(kt + d * lp + j);
                    for (int r = 0; r < ADK_ROWS; r++) acc[r] += qs[(i + r) * d_head + d] * k;
                }
                for (int r = 0; r < ADK_ROWS; r++) ADK_FN(adk_store)(p + (i + r) * lp + j, acc[r]);
            }
        }
        // Softmax of each real row over the real columns; padded columns become 0.
        for (int64_t i = 0; i < length; i++) {
            float *restrict row = p + i * lp;
            for (int64_t j = length; j < lp; j++) row[j] = -INFINITY;
            if (a->window > 0) {
                // Outside the sliding window: as far from the softmax as the padding (exactly 0 after it, below).
                for (int64_t j = 0; j < i - a->window; j++) row[j] = -INFINITY;
                for (int64_t j = i + a->window + 1; j < length; j++) row[j] = -INFINITY;
            }
            VF vmax = (VF)(-INFINITY);
            for (int64_t j = 0; j < lp; j += ADK_VW) vmax = __builtin_elementwise_max(vmax, ADK_FN(adk_load)(row + j));
            const float maximum = ADK_FN(adk_hmax)(vmax);
            VF vsum = (VF)0.0f;
            for (int64_t j = 0; j < lp; j += ADK_VW) {
                VF e = ADK_FN(adk_vexp)(ADK_FN(adk_load)(row + j) - maximum);
                ADK_FN(adk_store)(row + j, e);
                vsum += e;
            }
            // The padded columns hold exp(−87) ≈ 1.6e-38 (adk_vexp's floor): lost when added to the maximum's 1, and
            // the context product below never reads them. Each row is divided by its sum only at the end, on its
            // head_size outputs rather than its length probabilities.
            inverse_sums[i] = 1.0f / ADK_FN(adk_hsum)(vsum);
            if (a->window > 0) {
                for (int64_t j = 0; j < i - a->window; j++) row[j] = 0.0f;
                for (int64_t j = i + a->window + 1; j < length; j++) row[j] = 0.0f;
            }
        }
        for (int64_t i = length; i < rows_padded; i++) memset(p + i * lp, 0, (size_t)lp * sizeof(float));
        // Context: out[i][d] = Σ_j p[i][j] · vs[j][d], eight rows at a time.
        for (int64_t i = 0; i < rows_padded; i += ADK_ROWS) {
            for (int64_t d = 0; d < dp; d += ADK_VW) {
                VF acc[ADK_ROWS];
                for (int r = 0; r < ADK_ROWS; r++) acc[r] = (VF)0.0f;
                for (int64_t j = 0; j < length; j++) {
                    const VF v = ADK_FN(adk_load)(vs + j * dp + d);
                    for (int r = 0; r < ADK_ROWS; r++) acc[r] += p[(i + r) * lp + j] * v;
                }
                for (int r = 0; r < ADK_ROWS && i + r < length; r++) {
                    float *out = a->context + (start + i + r) * a->ldc + head * d_head;
                    acc[r] *= inverse_sums[i + r];
                    if (d + ADK_VW <= d_head) {
                        ADK_FN(adk_store)(out + d, acc[r]);
                    } else {
                        for (int64_t e = d; e < d_head; e++) out[e] = acc[r][e - d];
                    }
                }
            }
        }
    }
}
