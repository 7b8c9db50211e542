"""Instruction-set variants of the compiled kernels: which were built, which
this CPU runs, and which one is used.

The kernels are one source compiled several times: for a portable baseline
and, on x86-64, for AVX2 with FMA and for AVX-512 (``_als_kernels.pxi`` into
``_als_baseline``, ``_als_avx2``, ``_als_avx512``, and the same for
``_topk``; see docs/design.md, section 8).  At import the best variant that
was built and that the CPU runs is chosen, and ``fastunlearn._als`` and
``fastunlearn._topk`` re-export its functions.

``FASTUNLEARN_ISA=baseline|avx2|avx512`` (read at import) forces a variant,
for testing and for comparing them; one that was not built or that this CPU
cannot run is refused with a warning, and the automatic choice is used.

Each variant is deterministic on its own (bitwise the same for any number of
threads), but the variants round differently: wider vectors sum dot products
in another order, and FMA rounds a multiply-add once instead of twice.  Their
results agree to rounding, not bitwise.
"""
import contextlib
import importlib
import os
import warnings

from . import _cpu

#: Variants, best first, with the CPU features each needs (names as
#: ``_cpu.FEATURES``); the compile flags that match are in setup.py.
VARIANTS = {
    "avx512": frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
                         "avx2", "fma"}),
    "avx2": frozenset({"avx2", "fma"}),
    "baseline": frozenset(),
}
ENV = "FASTUNLEARN_ISA"
_FAMILIES = ("_als", "_topk")  # kernel modules built per variant
_bound = {}  # family -> the namespace of the module that re-exports it


def cpu_features():
    """The instruction-set features this CPU and its OS support."""
    return _cpu.cpu_features()


_HERE = os.path.dirname(os.path.abspath(__file__))


def _module(family, variant):
    """The compiled module of ``family`` for ``variant`` in this package, or
    None.  One found elsewhere is not this build's: an editable install's
    import hook can supply, from its own tree, a submodule this one lacks."""
    try:
        mod = importlib.import_module(f"fastunlearn.{family}_{variant}")
    except ImportError:
        return None
    return mod if os.path.dirname(os.path.abspath(mod.__file__)) == _HERE else None


def compiled_features(variant, family="_als"):
    """The features ``variant`` was compiled to use (None when not built).

    The baseline uses none, unless built with ``FASTUNLEARN_NATIVE=1``
    (``-march=native``): then those of the build machine."""
    mod = _module(family, variant)
    if mod is None:
        return None
    bits = mod.compiled_features()
    return frozenset(name for i, name in enumerate(_cpu.FEATURES) if bits >> i & 1)


def built():
    """Variants this installation includes, best first."""
    return [v for v in VARIANTS if all(_module(f, v) is not None for f in _FAMILIES)]


def runnable():
    """Variants built and runnable on this CPU, best first."""
    have = cpu_features()
    return [v for v in built() if compiled_features(v) <= have]


def _choose():
    """The variant to use and, when ``FASTUNLEARN_ISA`` was refused, why."""
    ok = runnable()
    if not built():
        raise ImportError(
            "fastunlearn's compiled kernels are missing (no fastunlearn._als_baseline or "
            "_topk_baseline): install with 'pip install .', or build a source checkout with "
            "'python setup.py build_ext --inplace'.")
    if not ok:
        lacking = sorted(compiled_features("baseline") - cpu_features())
        raise ImportError(
            "fastunlearn's kernels were built for another CPU (with FASTUNLEARN_NATIVE=1, "
            f"-march=native): this one lacks {', '.join(lacking)}. Reinstall fastunlearn "
            "on this machine, or without FASTUNLEARN_NATIVE for a portable build.")
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("", "auto"):
        return ok[0], None
    if forced not in VARIANTS:
        why = (f"{ENV}={forced!r} is not a kernel variant (expected one of "
               f"{', '.join(VARIANTS)} or auto)")
    elif forced not in built():
        why = f"{ENV}={forced} asks for kernels this build does not include (built: " \
              f"{', '.join(built())})"
    elif forced not in ok:
        lacking = sorted(VARIANTS[forced] - cpu_features())
        why = f"{ENV}={forced} asks for kernels this CPU cannot run (it lacks " \
              f"{', '.join(lacking)})"
    else:
        return forced, None
    return ok[0], f"{why}; using {ok[0]}."


_selected, _refused = _choose()
if _refused:
    warnings.warn(_refused, RuntimeWarning, stacklevel=2)


def selected():
    """The variant the kernels use now."""
    return _selected


def info():
    """What ``show_config`` reports about the variants (a dict)."""
    forced = os.environ.get(ENV)
    return {"selected": _selected, "built": built(), "runnable": runnable(),
            "forced": forced, "refused": _refused,
            "cpu_features": sorted(cpu_features()),
            "baseline_native": sorted(compiled_features("baseline") or ())}


def bind(namespace, family):
    """Fill ``namespace`` (a module's globals) with the public names of the
    selected variant of ``family`` (``"_als"``)."""
    _bound[family] = namespace
    _rebind(family, _selected)


def _rebind(family, variant):
    mod = _module(family, variant)
    namespace = _bound[family]
    for name in dir(mod):
        if not name.startswith("__"):
            namespace[name] = getattr(mod, name)
    namespace["VARIANT"] = variant


@contextlib.contextmanager
def use(variant):
    """Run the kernels of ``variant`` inside the ``with`` block (for tests and
    benchmarks comparing variants in one process; not thread-safe).

    Raises
    ------
    ValueError
        If ``variant`` was not built or this CPU cannot run it.
    """
    global _selected
    if variant not in runnable():
        raise ValueError(f"variant must be one of the kernel variants built and runnable "
                         f"here ({', '.join(runnable())}); got {variant!r}")
    before = _selected
    _selected = variant
    for family in _bound:
        _rebind(family, variant)
    try:
        yield variant
    finally:
        _selected = before
        for family in _bound:
            _rebind(family, before)
