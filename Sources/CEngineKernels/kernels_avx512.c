// The AVX-512 copy of the kernels (F, BW, DQ, VL: Skylake-X and later, Zen 4).
#if defined(__x86_64__)
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), apply_to = function)
#define ADK_SUFFIX avx512
#define ADK_VW 16
#include "kernels_impl.h"
#include "panel_gemm_impl.h"
#pragma clang attribute pop
#endif
