/* Deep ADMM-Net CPU inference kernels (see admm_net.inc and unrolled/models/admm_net.py). */
#include <stdlib.h>

#define REAL float
#define NAME(f) f##_f32
#include "admm_net.inc"
#undef REAL
#undef NAME

#define REAL double
#define NAME(f) f##_f64
#include "admm_net.inc"
