// The AVX2 + FMA copy of the kernels (Haswell and later, Zen).
#if defined(__x86_64__)
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define ADK_SUFFIX avx2
#define ADK_VW 8
#include "kernels_impl.h"
#include "panel_gemm_impl.h"
#pragma clang attribute pop
#endif
