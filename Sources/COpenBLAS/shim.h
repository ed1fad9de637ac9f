#ifndef ADAPTERD_COPENBLAS_SHIM_H
#define ADAPTERD_COPENBLAS_SHIM_H
// Debian installs OpenBLAS's cblas.h (with openblas_set_num_threads) as the cblas alternative.
#include <cblas.h>
#endif
