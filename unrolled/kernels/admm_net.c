/* Deep ADMM-Net CPU inference kernels (see admm_net.inc and unrolled/models/admm_net.py). */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define KERNELS "admm_net.inc"
#include "both_types.h"
