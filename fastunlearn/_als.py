"""Compiled ALS kernels: row solves (Cholesky, CG), row gradients, loss, Gram,
and for forgetting the bound updates and the state checksum.

This module re-exports the instruction-set variant of the kernels chosen for
this CPU (see ``fastunlearn.isa``; ``VARIANT`` names it); their source, and
what each kernel does, is ``_als_kernels.pxi``.
"""
from . import isa

isa.bind(globals(), "_als")
