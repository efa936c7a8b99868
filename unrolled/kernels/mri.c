/* MRI physics CPU kernels (see unrolled/physics/mri.py). Complex tensors are
   interleaved (real, imaginary) pairs of REAL. */
#include <stdlib.h>

#define REAL float
#define NAME(f) f##_f32
#include "mri.inc"
#undef REAL
#undef NAME

#define REAL double
#define NAME(f) f##_f64
#include "mri.inc"
