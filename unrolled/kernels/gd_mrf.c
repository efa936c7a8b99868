/* GD-MRF CPU inference kernels (see gd_mrf.inc and unrolled/models/gd_mrf.py). */
#include <stdlib.h>

#define REAL float
#define NAME(f) f##_f32
#include "gd_mrf.inc"
#undef REAL
#undef NAME

#define REAL double
#define NAME(f) f##_f64
#include "gd_mrf.inc"
