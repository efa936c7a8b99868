/* MRI physics CPU kernels (see unrolled/physics/mri.py). Complex tensors are
   interleaved (real, imaginary) pairs of REAL. */
#include <stdlib.h>

#define KERNELS "mri.inc"
#include "both_types.h"
