"""The ALS kernels (_als_kernels.pxi) compiled for AVX-512 (F, CD, BW, DQ,
VL) with AVX2 and FMA; used through _als.py."""
include "_als_kernels.pxi"
