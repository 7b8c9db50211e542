"""Shared fixtures: small random problems, the MovieLens 100K path and the
Hypothesis settings of every property and fuzz test."""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import reference as ref

# FASTUNLEARN_MOVIELENS names u.data elsewhere (a mutation run's copy of the
# tests lives one directory deeper; docs/mutation.md)
MOVIELENS = Path(os.environ.get("FASTUNLEARN_MOVIELENS") or
                 Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data")

# (model kind for the reference, estimator constructor arguments)
OBJECTIVES = {
    "implicit": ("implicit", dict(regularization=0.1, alpha=2.0), {}),
    "explicit": ("explicit", dict(regularization=0.1), dict(weighted_regularization=False)),
    "weighted": ("explicit", dict(regularization=0.1), dict(weighted_regularization=True)),
}


# The default run is derandomised, so CI reproduces it exactly;
# HYPOTHESIS_PROFILE=thorough draws twenty times as many fresh examples.
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE", "default") == "thorough"


def examples(n):
    """Hypothesis settings for a test drawing ``n`` examples by default."""
    return settings(max_examples=20 * n if THOROUGH else n, deadline=None,
                    derandomize=not THOROUGH, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def reference_kwargs(name):
    """Keyword arguments of tests/reference.py functions for objective ``name``."""
    model, params, extra = OBJECTIVES[name]
    return dict(model=model, regularization=params["regularization"],
                alpha=params.get("alpha", 1.0), weighted=extra.get("weighted_regularization", False))


def make_model(name, X, Y, R, **overrides):
    """An estimator for objective ``name`` holding factors X, Y and data R."""
    import fastunlearn as fu

    model, params, extra = OBJECTIVES[name]
    cls = fu.ImplicitALS if model == "implicit" else fu.ExplicitALS
    kwargs = {**params, **extra, "dtype": np.float64, "num_threads": 1, **overrides}
    return cls.from_factors(X, Y, R, **kwargs)


@pytest.fixture(params=sorted(OBJECTIVES))
def objective_name(request):
    return request.param


@pytest.fixture
def movielens():
    """MovieLens 100K as a users x items CSR of ratings (skips when absent)."""
    if not MOVIELENS.exists():
        pytest.skip(f"MovieLens 100K not found at {MOVIELENS}")
    import scipy.sparse as sp

    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    users, items, ratings = raw[:, 0] - 1, raw[:, 1] - 1, raw[:, 2].astype(np.float32)
    return sp.csr_matrix((ratings, (users, items)), shape=(users.max() + 1, items.max() + 1))


def problem(seed, **kwargs):
    return ref.random_problem(seed, **kwargs)
