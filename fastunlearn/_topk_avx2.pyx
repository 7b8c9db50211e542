"""Top-N selection (_topk_kernels.pxi) compiled for AVX2 and FMA; used through
_topk.py."""
include "_topk_kernels.pxi"
