"""Top-N selection (_topk_kernels.pxi) compiled for AVX-512; used through
_topk.py."""
include "_topk_kernels.pxi"
