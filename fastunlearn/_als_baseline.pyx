"""The ALS kernels (_als_kernels.pxi) compiled for the portable baseline
(SSE2 on x86-64; or for the build machine with FASTUNLEARN_NATIVE=1); used
through _als.py."""
include "_als_kernels.pxi"
