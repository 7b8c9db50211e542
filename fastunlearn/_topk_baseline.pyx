"""Top-N selection (_topk_kernels.pxi) compiled for the portable baseline; used through
_topk.py."""
include "_topk_kernels.pxi"
