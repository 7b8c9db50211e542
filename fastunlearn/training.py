"""The fit loop, once for every backend: the initial factors a fit starts
from and the sweeps that follow (docs/design.md, section 6)."""
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from .config import single_threaded_blas


def initial_generator(random_state):
    """The Generator that draws a fit's initial factors, from what implicit accepts
    as a seed (the local and the distributed fit draw the same)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    return np.random.default_rng(random_state)


def initial_factors(spec, n_users, n_items, random_state):
    """``uniform[0, 0.01)`` factors of ``spec``'s shape and dtype, users first
    (implicit's start)."""
    rng = initial_generator(random_state)
    # scaled in place: no temporary as large as the factors (what
    # resources.estimate_fit_memory counts does not depend on NumPy eliding
    # one), and the same values as ``rng.random(...) * 0.01``
    X = rng.random((n_users, spec.factors), dtype=spec.dtype)
    X *= spec.dtype.type(0.01)
    Y = rng.random((n_items, spec.factors), dtype=spec.dtype)
    Y *= spec.dtype.type(0.01)
    return X, Y


def run_sweeps(backend, iterations, *, show_progress=False, desc=None, callback=None,
               loss=None):
    """``iterations`` ALS iterations of ``backend`` (its ``sweep()``), with a
    progress bar, ``callback(iteration, seconds, loss)`` after each, and
    ``loss()`` (if given) computed for the bar and the callback.  Warns when
    row solves met a singular system."""
    failed = 0
    with single_threaded_blas(), tqdm(total=iterations, disable=not show_progress,
                                      desc=desc) as progress:
        for iteration in range(iterations):
            start = time.perf_counter()
            failed += backend.sweep()
            value = loss() if loss is not None else None
            if value is not None:
                progress.set_postfix(loss=f"{value:.5g}")
            progress.update(1)
            if callback is not None:
                callback(iteration, time.perf_counter() - start, value)
    if failed:
        warnings.warn(
            f"{failed} row solves had a singular system and kept their previous "
            "value; use regularization > 0", RuntimeWarning, stacklevel=4,
        )
