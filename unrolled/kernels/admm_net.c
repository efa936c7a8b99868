/* Deep ADMM-Net CPU inference kernels (see admm_net.inc and unrolled/models/admm_net.py). */
#include <stdlib.h>

#define KERNELS "admm_net.inc"
#include "both_types.h"
