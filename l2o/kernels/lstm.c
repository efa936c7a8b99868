/* Coordinatewise LSTM cell, point-wise part (see lstm.inc and l2o/cells.py). */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP (native.py retries so): one thread */
static int omp_get_max_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
#endif

/* exp for float32 that the compiler can vectorise (libm's expf is a call per
   element): exp(x) = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in two parts
   (Cody-Waite), e^r by its Taylor polynomial to degree 7 (|r| <= ln 2 / 2: error
   below 1e-8 relative), 2^n put into the exponent bits. Inputs are clamped to
   [-87, 88] (no overflow, no denormal results); NaN stays NaN. */
static inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by adding and subtracting 1.5 * 2^23 (branch-free; |x / ln 2| < 2^22) */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    /* Estrin's scheme (pairs, then pairs of pairs): a dependency chain of 3 FMAs
       instead of Horner's 7, so more of the loop's vectors are in flight at once */
    const float r2 = r * r, r4 = r2 * r2;
    const float p01 = 1.0f + r, p23 = 0.5f + r * (1.0f / 6.0f);
    const float p45 = 1.0f / 24.0f + r * (1.0f / 120.0f), p67 = 1.0f / 720.0f + r * (1.0f / 5040.0f);
    const float p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

/* tanh through the sigmoid: tanh(x) = 2 s(2x) - 1. Absolute error of float32
   rounding (about 1e-7), which is what the LSTM's sums need; in float64, libm's. */
static inline float tanh_f32(float x) { return 2.0f * sigmoid_f32(2.0f * x) - 1.0f; }
static inline double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double tanh_f64(double x) { return tanh(x); }

#define KERNELS "lstm.inc"
#include "both_types.h"
