"""Shared fixtures: small random problems, the MovieLens 100K path and the
Hypothesis settings of every property and fuzz test; the summary line that
counts the tests skipped for want of MovieLens 100K."""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import reference as ref



def _movielens_path():
    """MovieLens 100K's u.data: where FASTUNLEARN_MOVIELENS points (the file
    or its directory), else ../shared/data/ml-100k/u.data beside the checkout."""
    given = os.environ.get("FASTUNLEARN_MOVIELENS")
    if not given:
        return Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"
    path = Path(given).expanduser()
    return path / "u.data" if path.is_dir() else path


MOVIELENS = _movielens_path()
# Every skip for want of the data says this, which the summary counts.
MOVIELENS_MISSING = "MovieLens 100K not found at"

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


def signed_data(n_users, n_items, seed=3):
    """A random CSR with negative values and stored zeros (values rounded to
    0.1 in [-1.5, 4.5)): what the kernels' determinism and variant tests fit."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    R = sp.random(n_users, n_items, density=0.15, format="csr", random_state=rng)
    R.data = np.round(R.data * 6 - 1.5, 1)
    return R


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
        pytest.skip(f"{MOVIELENS_MISSING} {MOVIELENS}")
    import scipy.sparse as sp

    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    users, items, ratings = raw[:, 0] - 1, raw[:, 1] - 1, raw[:, 2].astype(np.float32)
    return sp.csr_matrix((ratings, (users, items)), shape=(users.max() + 1, items.max() + 1))


def problem(seed, **kwargs):
    return ref.random_problem(seed, **kwargs)


def pytest_terminal_summary(terminalreporter):
    """Say how many tests went without MovieLens 100K, and how to supply it;
    and how many documentation examples ran (tests/test_readme_examples.py)."""
    missing = [r for r in terminalreporter.stats.get("skipped", [])
               if MOVIELENS_MISSING in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_line(
            f"{len(missing)} tests skipped: {MOVIELENS_MISSING} {MOVIELENS}; set "
            "FASTUNLEARN_MOVIELENS to the ml-100k directory or its u.data (README, "
            "'Install and try it')", yellow=True)
    counts = getattr(terminalreporter.config, "_fastunlearn_doc_blocks", None)
    if counts:
        terminalreporter.write_line(
            f"documentation examples: {counts['run']} blocks run, {counts['not run']} marked "
            "'not run' (README.md, docs/*.md)")
