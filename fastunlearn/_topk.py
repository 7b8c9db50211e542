"""Compiled top-N selection: scores by gemm over blocks of queries, then a
bounded heap per query (csrc/topk.c), parallel over queries.

This module re-exports the instruction-set variant chosen for this CPU (see
``fastunlearn.isa``); the source is ``_topk_kernels.pxi``.
"""
from . import isa

isa.bind(globals(), "_topk")
