#ifndef ADAPTERD_CDNNL_SHIM_H
#define ADAPTERD_CDNNL_SHIM_H
// Debian's libdnnl-dev (oneDNN 2.6, OpenMP runtime): dnnl_sgemm, dnnl_gemm_u8s8s32 and the CPU ISA controls.
#include <oneapi/dnnl/dnnl.h>
#endif
