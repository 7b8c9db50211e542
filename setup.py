"""Build the compiled kernels of fastunlearn.

Environment variables read here:

* ``FASTUNLEARN_NATIVE=1``   add ``-march=native`` (not portable; off by default).
* ``FASTUNLEARN_NO_OPENMP=1`` build without OpenMP (kernels then run serially).
* ``FASTUNLEARN_SANITIZE=1``  build with ``-fsanitize=address,undefined`` and
  ``-O1 -g`` for debugging; run Python with the ASan runtime and libstdc++
  preloaded: ``LD_PRELOAD="$(gcc -print-file-name=libasan.so)
  $(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0``.
"""
import os
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


def _compiler_accepts(compiler, flags):
    """Whether ``compiler`` compiles and links a small OpenMP program with ``flags``."""
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
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


class BuildExt(build_ext):
    """Adds OpenMP (when the compiler supports it) and the optional flags."""

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
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


def _extension(name, sources):
    return Extension(
        f"fastunlearn.{name}",
        sources,
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


extensions = [
    _extension("_als", ["fastunlearn/_als.pyx"]),
    _extension("_topk", ["fastunlearn/_topk.pyx", "csrc/topk.c"]),
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
