"""Build the compiled kernels of fastunlearn.

Environment variables read here:

* ``FASTUNLEARN_NATIVE=1``   build the kernels for this CPU only (``-march=native``;
  not portable; off by default).  Otherwise, on x86-64 the kernels are built
  for a portable baseline and again for AVX2+FMA and AVX-512, and the best
  variant the CPU runs is chosen at import (fastunlearn/isa.py).
* ``FASTUNLEARN_NO_OPENMP=1`` build without OpenMP (kernels then run serially).
* ``FASTUNLEARN_SANITIZE=1``  build with ``-fsanitize=address,undefined`` and
  ``-O1 -g`` for debugging; run Python with the ASan runtime and libstdc++
  preloaded: ``LD_PRELOAD="$(gcc -print-file-name=libasan.so)
  $(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0``.
"""
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


# Compile flags of the kernel variants beside the baseline (x86-64, GCC or
# Clang); fastunlearn/isa.py lists the CPU features each needs at run time.
# -ffp-contract=fast: -std=c99 turns contraction off, and these variants are
# there for FMA among other things (rounding differs from the baseline anyway).
# AVX-512 on 256-bit vectors by default (GCC's choice for Intel's server
# CPUs, which clock down for 512-bit ones): the row loops are k = 32..128
# long, the Cholesky tiles 8 floats wide, and 512-bit vectors measured
# slower for both on an AMD EPYC (Zen 4); the variant still gains the 32
# vector registers, masked loop tails and AVX-512's instructions.
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-ffp-contract=fast"],
    "avx512": ["-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq", "-mavx512vl",
               "-mavx2", "-mfma", "-mprefer-vector-width=256", "-ffp-contract=fast"],
}
# Kernel families compiled once per variant, fastunlearn/{family}_{variant}.pyx,
# with the C sources each also needs
ISA_FAMILIES = {"_als": [], "_topk": ["csrc/topk.c"]}

_OPENMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
# What the variants rely on: the flags, and run-time CPU detection (csrc/fu_cpu.h)
_ISA_PROBE = ("int main(void) { __builtin_cpu_init(); "
              "return __builtin_cpu_supports(\"avx2\") ? 0 : 1; }\n")


def _compiler_accepts(compiler, flags, src=_OPENMP_PROBE):
    """Whether ``compiler`` compiles and links ``src`` (a small OpenMP program) with ``flags``."""
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as fh:
            fh.write(src)
        objs = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:  # any compile or link failure means "no"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _multi_arch_flags():
    """Whether the build targets several architectures at once (macOS universal2)."""
    flags = os.environ.get("ARCHFLAGS", "") + " " + os.environ.get("CFLAGS", "")
    return flags.count("-arch") > 1


def _isa_variants(compiler):
    """The variants beside the baseline that this build makes, with a message
    when it makes fewer than it would on x86-64 with GCC or Clang."""
    if _flag("FASTUNLEARN_NATIVE"):
        print("fastunlearn: FASTUNLEARN_NATIVE is set; building the kernels for this CPU "
              "only (-march=native), without run-time dispatch.")
        return []
    if platform.machine().lower() not in ("x86_64", "amd64") or _multi_arch_flags():
        return []  # other architectures: the baseline only (docs/design.md, section 8)
    if compiler.compiler_type != "unix":
        print("fastunlearn: this compiler is not GCC or Clang; building the portable "
              "kernels only (no AVX2/AVX-512 variants).", file=sys.stderr)
        return []
    made = []
    for variant, flags in ISA_FLAGS.items():
        if _compiler_accepts(compiler, flags, _ISA_PROBE):
            made.append(variant)
        else:
            print(f"\n*** fastunlearn: the C compiler does not accept {' '.join(flags)} or "
                  "lacks __builtin_cpu_supports; building WITHOUT the "
                  f"{variant} kernels (CPUs that have {variant} run the next best variant, "
                  "more slowly). A newer gcc or clang builds them. ***\n", file=sys.stderr)
    return made


class BuildExt(build_ext):
    """Adds OpenMP (when the compiler supports it), the optional flags, and the
    instruction-set flags of each kernel variant."""

    def build_extensions(self):
        compile_args = ["-O3", "-std=c99"] if self.compiler.compiler_type == "unix" else []
        link_args = []
        if _flag("FASTUNLEARN_SANITIZE"):
            # Python's CFLAGS carry -fwrapv, which hides signed overflow from UBSan
            compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv",
                            "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
            link_args += ["-fsanitize=address,undefined"]
        if _flag("FASTUNLEARN_NATIVE"):
            compile_args.append("-march=native")

        openmp = ["-fopenmp"] if self.compiler.compiler_type == "unix" else ["/openmp"]
        if _flag("FASTUNLEARN_NO_OPENMP"):
            print("fastunlearn: FASTUNLEARN_NO_OPENMP is set; building serial kernels.")
            compile_args.append("-fopenmp-simd")
        elif _compiler_accepts(self.compiler, openmp):
            compile_args += openmp
            link_args += openmp
        else:
            print(
                "\n*** fastunlearn: the C compiler does not accept "
                f"{' '.join(openmp)}; building WITHOUT OpenMP. Every kernel will run on one "
                "core. Install an OpenMP-capable compiler (gcc, or clang with libomp) and "
                "reinstall to use all cores. fastunlearn.show_config() reports this. ***\n",
                file=sys.stderr,
            )
        variants = _isa_variants(self.compiler)
        kept = []
        for ext in self.extensions:
            family, _, variant = ext.name.split(".")[-1].rpartition("_")
            isa = []
            if family in ISA_FAMILIES and variant in ISA_FLAGS:
                if variant not in variants:
                    self._remove_stale(ext)
                    continue
                isa = ISA_FLAGS[variant]
            ext.extra_compile_args = compile_args + isa + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
            kept.append(ext)
        self.extensions = kept
        # the single extensions of earlier versions (_als, _topk): left in
        # place, they would be imported instead of _als.py, _topk.py
        for family in ISA_FAMILIES:
            self._remove_stale(Extension(f"fastunlearn.{family}", []))
        if self.parallel is None:  # the variants compile independently
            self.parallel = os.cpu_count() or 1
        super().build_extensions()

    def _remove_stale(self, ext):
        """Remove the binary of an extension this build does not make, from
        the source tree (in-place builds) and the build folder (what wheels
        are made of): it would otherwise be found and run."""
        here = os.path.dirname(os.path.abspath(__file__))
        for root in (here, self.build_lib):
            stem = os.path.join(root, *ext.name.split("."))
            for path in glob.glob(stem + ".*.so") + glob.glob(stem + ".*.pyd"):
                print(f"fastunlearn: removing {path}, which this build does not make")
                os.remove(path)


def _extension(name, sources):
    return Extension(
        f"fastunlearn.{name}",
        sources,
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


extensions = [
    *(_extension(f"{family}_{variant}", [f"fastunlearn/{family}_{variant}.pyx", *c_sources])
      for family, c_sources in ISA_FAMILIES.items() for variant in ("baseline", *ISA_FLAGS)),
    _extension("_cpu", ["fastunlearn/_cpu.pyx"]),
    _extension("_csr", ["fastunlearn/_csr.pyx", "csrc/csr_edit.c"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
