"""What instruction sets this CPU runs (for isa.py), asked of the compiler's
run-time CPU detection (csrc/fu_cpu.h)."""

cdef extern from "fu_cpu.h":
    int fu_cpu_features()

# Bit of each feature in fu_cpu_features() (csrc/fu_cpu.h)
FEATURES = ("avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


def cpu_features():
    """The features of FEATURES that this CPU and OS support."""
    cdef int bits = fu_cpu_features()
    return frozenset(name for i, name in enumerate(FEATURES) if bits >> i & 1)
