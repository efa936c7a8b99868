/* Instantiate the kernels of the file named by KERNELS for float (suffix _f32) and
   double (_f64): the file writes REAL for the type and NAME(f) for a suffixed
   name; REAL_IS_FLOAT tells it which one it is. */
#define REAL float
#define NAME(f) f##_f32
#define REAL_IS_FLOAT 1
#include KERNELS
#undef REAL
#undef NAME
#undef REAL_IS_FLOAT

#define REAL double
#define NAME(f) f##_f64
#define REAL_IS_FLOAT 0
#include KERNELS
#undef REAL
#undef NAME
#undef REAL_IS_FLOAT
