// The portable copy of the kernels: the compiler's baseline for the target (SSE2 on x86-64, NEON on arm64).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine_kernels.h"
#include "kernels_internal.h"
#define ADK_SUFFIX portable
#define ADK_VW 4
#include "kernels_impl.h"
#include "panel_gemm_impl.h"
