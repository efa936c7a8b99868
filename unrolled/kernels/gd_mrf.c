/* GD-MRF CPU inference kernels (see gd_mrf.inc and unrolled/models/gd_mrf.py). */
#include <stdlib.h>

#define KERNELS "gd_mrf.inc"
#include "both_types.h"
