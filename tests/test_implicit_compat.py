"""Differential tests: the same calls on implicit 0.7 (CPU) and on
``fastunlearn.AlternatingLeastSquares``, from the same factors.

Every test builds an implicit model, sets its factors, takes it over with
``from_implicit`` (or loads its file) and compares what both return: ids,
scores, shapes, dtypes, warnings and exceptions.  Scores are compared to
float tolerance; ids are compared as sets wherever scores tie, since the
order among equal scores is arbitrary in both.  Where fastunlearn differs on
purpose (docs/implicit.md, "What differs, on purpose") the test says so:
padding past the real candidates (implicit returns filtered or made-up ids
there, fastunlearn -1), and duplicate CSR entries (summed here, taken one
by one by implicit's kernels).
"""
import inspect
import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn.ranking import PAD_SCORE

implicit = pytest.importorskip("implicit", minversion="0.7")
if not implicit.__version__.startswith("0.7."):
    pytest.skip(f"the differential tests are for implicit 0.7, found {implicit.__version__}",
                allow_module_level=True)
from implicit.cpu.als import AlternatingLeastSquares as ImplicitCPU
from implicit.recommender_base import ModelFitError as ImplicitModelFitError
from implicit.utils import ParameterWarning as ImplicitParameterWarning

K = 5
PARAMS = {"regularization": 0.1, "alpha": 2.0}

pytestmark = [
    # implicit's own warnings: its BLAS threadpool check; its division of
    # the -finfo.max scores of filtered candidates by small norms; and, in
    # the full suite only, its topk's np.dot reporting a floating-point flag
    # that earlier code in the process left set (its results, checked here
    # against the reference, are right)
    pytest.mark.filterwarnings("ignore:OpenBLAS is configured:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning"),
]


# ------------------------------------------------------------------ problems

def _checkerboard():
    """Ties everywhere: a checkerboard of ones, and only four distinct
    factor rows per side (so many scores are exactly equal)."""
    n_users, n_items = 12, 10
    rows, cols = np.nonzero((np.add.outer(np.arange(n_users), np.arange(n_items)) % 2) == 0)
    R = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    base = np.random.default_rng(0).standard_normal((4, K))
    return R, base[np.arange(n_users) % 4], base[np.arange(n_items) % 4]


def _random(seed=1, n_users=40, n_items=30, density=0.15):
    R = sp.random(n_users, n_items, density=density, format="csr", random_state=seed,
                  dtype=np.float32)
    R.data = np.ceil(R.data * 5)
    rng = np.random.default_rng(seed)
    return R, rng.standard_normal((n_users, K)), rng.standard_normal((n_items, K))


def _empty_rows_and_columns():
    """Users and items without interactions, with the zero factors a fit
    gives them (so their scores tie at 0)."""
    R, X, Y = _random(2)
    R = R.tolil()
    R[[0, 7, 8], :] = 0
    R[:, [0, 5]] = 0
    R = R.tocsr()
    R.eliminate_zeros()
    X[np.diff(R.indptr) == 0] = 0
    Y[np.diff(R.tocsc().indptr) == 0] = 0
    return R, X, Y


def _negative():
    """"Seen, not liked" entries: negative values."""
    R, X, Y = _random(3)
    R.data[::3] *= -1
    return R, X, Y


def _duplicates():
    """A CSR that stores some pairs twice (SciPy builds such a matrix from
    raw arrays as given)."""
    R, X, Y = _random(4)
    indptr, indices, data = [0], [], []
    for u in range(R.shape[0]):
        cols, vals = R.indices[R.indptr[u]:R.indptr[u + 1]], R.data[R.indptr[u]:R.indptr[u + 1]]
        if len(cols) and u % 3 == 0:  # repeat the first entry of every third user
            cols, vals = np.append(cols, cols[0]), np.append(vals, vals[0] + 1)
        indices.extend(cols)
        data.extend(vals)
        indptr.append(len(indices))
    D = sp.csr_matrix((np.array(data, np.float32), np.array(indices, np.int32),
                       np.array(indptr, np.int32)), shape=R.shape)
    assert not D.has_canonical_format
    return D, X, Y


PROBLEMS = {
    "checkerboard": (_checkerboard, np.float32),
    "random": (_random, np.float32),
    "empty": (_empty_rows_and_columns, np.float32),
    "negative": (_negative, np.float32),
    "duplicates": (_duplicates, np.float32),
    "float64": (_random, np.float64),
}


def summed(R):
    S = R.copy()
    S.sum_duplicates()
    return S


def pair(name):
    """(R, implicit model, fastunlearn model) holding the same factors."""
    make, dtype = PROBLEMS[name]
    R, X, Y = make()
    theirs = ImplicitCPU(factors=K, dtype=dtype, num_threads=1, **PARAMS)
    theirs.user_factors, theirs.item_factors = X.astype(dtype), Y.astype(dtype)
    ours = fu.AlternatingLeastSquares.from_implicit(theirs, R)
    return R, theirs, ours


@pytest.fixture(params=sorted(PROBLEMS))
def problem(request):
    return (request.param, *pair(request.param))


# ------------------------------------------------------------------ comparison

def _tol(scores):
    return {"rtol": 2e-5, "atol": 2e-5} if scores.dtype == np.float32 else \
        {"rtol": 1e-9, "atol": 1e-9}


def assert_lists_agree(ours, theirs, reference, valid):
    """``ours`` and ``theirs`` (ids, scores) agree on the first ``valid[r]``
    entries of every row r: same shape and dtypes, the same scores, each id
    reported with its ``reference`` score, and the same ids except where
    scores tie at the end of the list.  Past ``valid``, fastunlearn pads with
    id -1 and PAD_SCORE (implicit returns filtered or made-up ids there)."""
    (oi, os), (ti, ts) = ours, theirs
    assert oi.shape == ti.shape and os.shape == ts.shape == oi.shape
    assert oi.dtype == ti.dtype and os.dtype == ts.dtype
    oi, os, ti, ts = (np.atleast_2d(a) for a in (oi, os, ti, ts))
    reference = np.atleast_2d(reference)
    tol = _tol(os)
    for r, n in enumerate(valid):
        np.testing.assert_allclose(os[r, :n], ts[r, :n], **tol)
        for ids, scores in ((oi[r, :n], os[r, :n]), (ti[r, :n], ts[r, :n])):
            assert len(set(ids.tolist())) == n, ids
            assert not np.isnan(reference[r, ids]).any(), "a non-candidate was returned"
            np.testing.assert_allclose(scores, reference[r, ids], **tol)
        if n:
            differ = np.array(sorted(set(oi[r, :n].tolist()) ^ set(ti[r, :n].tolist())), int)
            if len(differ):  # only ids tied with the last score may differ
                np.testing.assert_allclose(reference[r, differ], os[r, n - 1], **tol)
        assert (oi[r, n:] == -1).all() and (os[r, n:] == os.dtype.type(PAD_SCORE)).all()


def _candidates(n, subset, excluded):
    mask = np.zeros(n, bool)
    mask[np.arange(n) if subset is None else np.asarray(subset)] = True
    if excluded is not None:
        mask[np.asarray(excluded)] = False
    return mask


def _cosine(Q, F):
    def unit(A):
        norms = np.linalg.norm(A, axis=1)
        norms[norms == 0] = 1e-10
        return A / norms[:, None]
    return unit(np.atleast_2d(Q).astype(np.float64)) @ unit(F.astype(np.float64)).T


# ------------------------------------------------------------------ recommend

@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("liked", [True, False], ids=["filter-liked", "keep-liked"])
@pytest.mark.parametrize("subset", [None, "filter_items", "items"])
@pytest.mark.parametrize("recalculate", [False, True], ids=["stored", "recalculated"])
@pytest.mark.parametrize("N", [4, 50])
def test_recommend(problem, batch, liked, subset, recalculate, N):
    name, R, theirs, ours = problem
    n_items = R.shape[1]
    userids = np.array([0, 3, 5, 7, 8]) if batch else 3
    rows = R[np.atleast_1d(userids)]
    kwargs = {"N": N, "filter_already_liked_items": liked, "recalculate_user": recalculate}
    chosen = {"filter_items": np.array([1, 2, 9]), "items": np.array([8, 1, 4, 2, 6, 3])}
    if subset:
        kwargs[subset] = chosen[subset]
    # implicit's kernels take duplicate entries one by one; fastunlearn sums
    # them (as SciPy's sum_duplicates), which is implicit on the summed matrix
    their_rows = summed(rows) if name == "duplicates" else rows
    Q = theirs.recalculate_user(userids, their_rows) if recalculate else \
        theirs.user_factors[userids]
    before = rows.copy()
    got = ours.recommend(userids, rows, **kwargs)
    assert (rows != before).nnz == 0  # fastunlearn never writes to the caller's rows
    # (implicit zeroes entries of them when items= meets filter_already_liked_items)
    expected = theirs.recommend(userids, their_rows.copy(), **kwargs)
    reference = np.atleast_2d(Q).astype(np.float64) @ theirs.item_factors.T.astype(np.float64)
    base = _candidates(n_items, kwargs.get("items"), kwargs.get("filter_items"))
    valid = []
    for r in range(reference.shape[0]):
        keep = base.copy()
        if liked:
            keep[rows[r].indices] = False
        reference[r, ~keep] = np.nan
        width = N if subset != "items" else min(N, len(chosen["items"]))
        valid.append(min(width, int(keep.sum())))
    if subset == "items" and liked:
        assert_liked_requested_items_last(got, expected, valid, rows, chosen["items"])
        got = _padded_after(got, valid)  # the ranked part is compared below
    assert_lists_agree(got, expected, reference, valid)


def _padded_after(lists, valid):
    """``(ids, scores)`` with entries past ``valid[r]`` of each row set to
    fastunlearn's padding (id -1, PAD_SCORE)."""
    ids, scores = (a.copy() for a in lists)
    for r, n in enumerate(valid):
        tail = np.s_[n:] if ids.ndim == 1 else np.s_[r, n:]
        ids[tail], scores[tail] = -1, PAD_SCORE
    return ids, scores


def assert_liked_requested_items_last(ours, theirs, valid, rows, items):
    """implicit's ``recommend(items=..., filter_already_liked_items=True)``:
    past the ranked items, the requested items the user liked, each once,
    at score ``-finfo(dtype).max``, never -1 (which of them fit a short
    list is a tie at that score)."""
    for ids, scores in (ours, theirs):
        ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
        for r, n in enumerate(valid):
            liked = np.intersect1d(rows[r].indices, items)
            tail = ids[r, n:]
            assert len(tail) == min(ids.shape[1] - n, len(liked)), (tail, liked)
            assert set(tail.tolist()) <= set(liked.tolist()) and len(set(tail)) == len(tail)
            assert (scores[r, n:] == -np.finfo(scores.dtype).max).all()
            assert len(set(ids[r].tolist())) == ids.shape[1]  # every item once


def test_recommend_without_user_items_when_nothing_needs_them(problem):
    _, _, theirs, ours = problem
    got = ours.recommend([1, 2], None, N=3, filter_already_liked_items=False)
    expected = theirs.recommend([1, 2], None, N=3, filter_already_liked_items=False)
    reference = theirs.user_factors[[1, 2]].astype(np.float64) @ theirs.item_factors.T
    assert_lists_agree(got, expected, reference, [3, 3])


@pytest.mark.parametrize("call, error", [
    (lambda m, R: m.recommend(R.shape[0], R[0]), IndexError),
    (lambda m, R: m.recommend(0, R[0], items=[R.shape[1]]), IndexError),
    (lambda m, R: m.recommend(0, R[0], filter_items=[R.shape[1]]), IndexError),
    (lambda m, R: m.recommend(0, R[0], items=[1], filter_items=[2]), ValueError),
    (lambda m, R: m.recommend([0, 1], R[0]), ValueError),
    (lambda m, R: m.recommend(0, None), ValueError),
    (lambda m, R: m.recommend(0, R[0], N=-1), ValueError),
    (lambda m, R: m.similar_items(R.shape[1]), IndexError),
    (lambda m, R: m.similar_users(R.shape[0]), IndexError),
    (lambda m, R: m.similar_items(0, items=[1], filter_items=[2]), ValueError),
    (lambda m, R: m.similar_users(0, users=[1], filter_users=[2]), ValueError),
    (lambda m, R: m.similar_items(0, items=[R.shape[1]]), IndexError),
    (lambda m, R: m.recalculate_user([0, 1], R[0]), ValueError),
    (lambda m, R: m.partial_fit_users([0, 1], R[0]), ValueError),
    (lambda m, R: m.partial_fit_items([0, 1], R.T.tocsr()[0]), ValueError),
    (lambda m, R: m.explain(0, R, R.shape[1]), IndexError),
    (lambda m, R: m.to_gpu(), ValueError),
])
def test_same_exceptions(call, error):
    R, theirs, ours = pair("random")
    for model in (theirs, ours):
        with pytest.raises(error):
            call(model, R)


@pytest.mark.parametrize("liked", [True, False])
def test_empty_batch(liked):
    R, theirs, ours = pair("random")
    none = np.array([], dtype=np.int64)
    got = ours.recommend(none, R[none], N=4, filter_already_liked_items=liked)
    expected = theirs.recommend(none, R[none], N=4, filter_already_liked_items=liked)
    for a, b in zip(got, expected):
        assert a.shape == b.shape == (0, 4) and a.dtype == b.dtype


# ------------------------------------------------------------------ similar_*

@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("subset", [None, "filter_items", "items"])
@pytest.mark.parametrize("recalculate", [False, True], ids=["stored", "recalculated"])
@pytest.mark.parametrize("N", [3, 50])
def test_similar_items(problem, batch, subset, recalculate, N):
    name, R, theirs, ours = problem
    itemids = np.array([1, 4, 6]) if batch else 4
    kwargs = {"N": N}
    chosen = {"filter_items": np.array([0, 2, 3]), "items": np.array([7, 1, 4, 2, 5])}
    if subset:
        kwargs[subset] = chosen[subset]
    item_users = R.T.tocsr()[np.atleast_1d(itemids)]
    their_rows = summed(item_users) if name == "duplicates" else item_users
    if recalculate:
        got = ours.similar_items(itemids, recalculate_item=True, item_users=item_users, **kwargs)
        expected = theirs.similar_items(itemids, recalculate_item=True, item_users=their_rows,
                                        **kwargs)
        Q = theirs.recalculate_item(itemids, their_rows)
    else:
        got = ours.similar_items(itemids, **kwargs)
        expected = theirs.similar_items(itemids, **kwargs)
        Q = theirs.item_factors[itemids]
    reference = _cosine(Q, theirs.item_factors)
    keep = _candidates(R.shape[1], kwargs.get("items"), kwargs.get("filter_items"))
    reference[:, ~keep] = np.nan
    assert_lists_agree(got, expected, reference, [min(N, int(keep.sum()))] * len(reference))


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("subset", [None, "filter_users", "users"])
@pytest.mark.parametrize("N", [3, 50])
def test_similar_users(problem, batch, subset, N):
    _, R, theirs, ours = problem
    userids = np.array([0, 2, 9]) if batch else 2
    kwargs = {"N": N}
    chosen = {"filter_users": np.array([1, 3]), "users": np.array([9, 0, 2, 5, 4, 11])}
    if subset:
        kwargs[subset] = chosen[subset]
    got = ours.similar_users(userids, **kwargs)
    expected = theirs.similar_users(userids, **kwargs)
    reference = _cosine(theirs.user_factors[userids], theirs.user_factors)
    keep = _candidates(R.shape[0], kwargs.get("users"), kwargs.get("filter_users"))
    reference[:, ~keep] = np.nan
    assert_lists_agree(got, expected, reference, [min(N, int(keep.sum()))] * len(reference))


# ------------------------------------------------------------------ factors and norms

def test_recalculate_norms_and_grams(problem):
    name, R, theirs, ours = problem
    users, items = [0, 3, 7], [1, 5]
    rows, cols = R[users], R.T.tocsr()[items]
    their_rows, their_cols = (rows, cols) if name != "duplicates" else \
        (summed(rows), summed(cols))
    tol = {"rtol": 1e-4, "atol": 1e-5} if ours.dtype == np.float32 else \
        {"rtol": 1e-7, "atol": 1e-9}
    pairs = [(ours.recalculate_user(users, rows), theirs.recalculate_user(users, their_rows)),
             (ours.recalculate_user(3, R[3]), theirs.recalculate_user(3, their_rows[1])),
             (ours.recalculate_item(items, cols), theirs.recalculate_item(items, their_cols)),
             (ours.user_norms, theirs.user_norms), (ours.item_norms, theirs.item_norms),
             (ours.YtY, theirs.YtY), (ours.XtX, theirs.XtX)]
    for got, expected in pairs:
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("name", ["random", "negative", "empty", "float64"])
@pytest.mark.parametrize("userid", [0, 5, 7])
@pytest.mark.parametrize("N", [0, 3, 100])
def test_explain(name, userid, N):
    R, theirs, ours = pair(name)
    total, top, weights = ours.explain(userid, R, 2, N=N)
    their_total, their_top, their_weights = theirs.explain(userid, R, 2, N=N)
    tol = {"rtol": 1e-4, "atol": 1e-6} if ours.dtype == np.float32 else \
        {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(total, their_total, **tol)
    assert len(top) == len(their_top) <= N
    assert [i for i, _ in top] == [int(i) for i, _ in their_top]  # no ties: same order
    np.testing.assert_allclose([s for _, s in top], [s for _, s in their_top], **tol)
    np.testing.assert_allclose(weights[0], their_weights[0], **tol)
    assert weights[1] == their_weights[1]
    # the total is the score of the item for the user solved from the row
    np.testing.assert_allclose(total, ours.recalculate_user(userid, R[userid]) @
                               ours.item_factors[2], rtol=1e-3, atol=1e-5)
    # each side's cached factor works in the other's next call
    again = ours.explain(userid, R, 4, user_weights=their_weights, N=N)
    their_again = theirs.explain(userid, R, 4, user_weights=weights, N=N)
    np.testing.assert_allclose(again[0], their_again[0], **tol)


# ------------------------------------------------------------------ fit

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_cg", [True, False], ids=["cg", "cholesky"])
@pytest.mark.parametrize("name", ["random", "negative", "empty"])
def test_fit_from_the_same_seed(dtype, use_cg, name):
    R = PROBLEMS[name][0]()[0]
    kwargs = dict(factors=K, dtype=dtype, use_cg=use_cg, iterations=2, random_state=7,
                  num_threads=1, calculate_training_loss=True, **PARAMS)
    theirs, ours = implicit.als.AlternatingLeastSquares(use_gpu=False, **kwargs), \
        fu.AlternatingLeastSquares(use_gpu=False, **kwargs)
    seen = {}
    for model in (theirs, ours):
        calls = seen[model] = []
        model.fit(R, show_progress=False, callback=lambda *args, calls=calls: calls.append(args))
        # a second fit continues from the factors (implicit keeps them)
        model.iterations = 1
        model.fit(R, show_progress=False, callback=lambda *args, calls=calls: calls.append(args))
    tol = 1e-2 if dtype == np.float32 and use_cg else 1e-4 if dtype == np.float32 else 1e-6
    for a, b in ((ours.user_factors, theirs.user_factors),
                 (ours.item_factors, theirs.item_factors)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.abs(a - b).max() <= tol * np.abs(b).max()
    ours_calls, their_calls = seen[ours], seen[theirs]
    assert [c[0] for c in ours_calls] == [c[0] for c in their_calls] == [0, 1, 0]
    assert all(isinstance(c[1], float) and isinstance(c[2], float) for c in ours_calls)
    np.testing.assert_allclose([c[2] for c in ours_calls], [c[2] for c in their_calls],
                               rtol=1e-3 if dtype == np.float32 else 1e-6)
    assert ours_calls[-1][2] < ours_calls[0][2]  # the loss falls


def test_fit_callback_attribute_and_no_loss_without_asking():
    R = _random()[0]
    got = {}
    for cls in (ImplicitCPU, fu.AlternatingLeastSquares):
        model = cls(factors=K, iterations=2, random_state=0)
        calls = got[cls] = []
        model.fit_callback = lambda *args, calls=calls: calls.append(args)
        model.fit(R, show_progress=False)
    assert [(c[0], c[2]) for c in got[ImplicitCPU]] == \
        [(c[0], c[2]) for c in got[fu.AlternatingLeastSquares]] == [(0, None), (1, None)]


@pytest.mark.parametrize("convert", [sp.coo_matrix, sp.csc_matrix, sp.lil_matrix])
def test_non_csr_input_warns_alike(convert):
    R, theirs, ours = pair("random")
    C = convert(R)
    for call in (lambda m: m.recalculate_user([0, 1], convert(R[[0, 1]])),
                 lambda m: m.explain(0, C, 1),
                 lambda m: m.fit(C, show_progress=False)):
        messages = []
        for model, category in ((theirs, ImplicitParameterWarning), (ours, fu.ParameterWarning)):
            model.iterations = 1
            with pytest.warns(category) as record:
                call(model)
            messages.append(str(record[0].message))
        prefix = f"Method expects CSR input, and was passed {type(C).__name__} instead"
        assert all(m.startswith(prefix) for m in messages), messages


def test_implicit_code_catches_the_conversion_warning():
    """Code written for implicit catches fastunlearn's warning: by its class
    (``pytest.warns``, ``except``) and through a warnings filter."""
    R, _, ours = pair("random")
    assert issubclass(fu.ParameterWarning, ImplicitParameterWarning)
    with pytest.warns(ImplicitParameterWarning, match="Method expects CSR input"):
        ours.recommend(0, sp.coo_matrix(R[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=ImplicitParameterWarning)
        with pytest.raises(ImplicitParameterWarning):
            ours.recalculate_user(0, sp.coo_matrix(R[0]))


def test_the_warning_needs_no_implicit(tmp_path):
    """Without implicit the class stands alone (a UserWarning)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['implicit'] = None\n"
            "import fastunlearn as fu\n"
            "assert 'implicit.utils' not in sys.modules\n"
            "print([c.__module__ + '.' + c.__name__ for c in fu.ParameterWarning.__mro__])")
    # run outside the checkout: its source tree (without built kernels in a
    # clean clone) would shadow the installed package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert "implicit" not in out and "builtins.UserWarning" in out


def test_unfitted_model_saves_and_loads_as_implicits(tmp_path):
    """implicit saves a model that was never fitted (hyperparameters only);
    either library loads the other's file back as an equal unfitted model."""
    params = {"factors": 12, "regularization": 0.5, "alpha": 3.0, "iterations": 4,
              "random_state": 7, "use_cg": False}
    ours = fu.AlternatingLeastSquares(**params)
    theirs = ImplicitCPU(**params)
    ours.save(tmp_path / "ours")
    theirs.save(str(tmp_path / "theirs"))
    for path in ("ours", "theirs"):
        for cls in (fu.AlternatingLeastSquares, ImplicitCPU):
            got = cls.load(str(tmp_path / path))
            assert got.user_factors is None and got.item_factors is None
            for attr in (*params, "cg_steps", "num_threads", "calculate_training_loss"):
                assert getattr(got, attr) == getattr(theirs, attr), (path, cls, attr)
            assert np.dtype(got.dtype) == np.dtype(theirs.dtype)
    # the loaded model fits as a new one does
    R = _random()[0]
    loaded = fu.AlternatingLeastSquares.load(tmp_path / "ours")
    loaded.fit(R, show_progress=False)
    fresh = fu.AlternatingLeastSquares(**params).fit(R, show_progress=False)
    np.testing.assert_array_equal(loaded.user_factors, fresh.user_factors)


def test_nan_factors_raise_model_fit_error():
    R = _random()[0]
    R.data[:] = 3e38  # alpha * value overflows float32
    for cls, error in ((ImplicitCPU, ImplicitModelFitError),
                       (fu.AlternatingLeastSquares, fu.ModelFitError)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(error, match="NaN encountered in factors"):
                cls(factors=K, iterations=1, alpha=10.0).fit(R, show_progress=False)


# ------------------------------------------------------------------ partial fits, deprecated API

@pytest.mark.parametrize("side", ["users", "items"])
def test_partial_fit_of_a_serving_model_is_implicits_row_update(side, tmp_path):
    """Without training data (an implicit file) there is nothing to
    re-converge against: the rows are re-solved as implicit does, new ids
    beyond the model included."""
    R, theirs, _ = pair("random")
    theirs.save(tmp_path / "m")
    ours = fu.AlternatingLeastSquares.load(tmp_path / "m")
    ids = np.array([1, 4, R.shape[0 if side == "users" else 1] + 2])
    M = R if side == "users" else R.T.tocsr()
    rows = M[[3, 5, 8]]
    for model in (theirs, ours):
        getattr(model, f"partial_fit_{side}")(ids, rows)
    for a, b in ((ours.user_factors, theirs.user_factors),
                 (ours.item_factors, theirs.item_factors)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_deprecated_rank_items_and_recommend_all():
    R, theirs, ours = pair("random")
    selected = np.array([3, 9, 1, 20])
    results = []
    for model in (theirs, ours):
        with pytest.warns(DeprecationWarning, match="rank_items is deprecated"):
            ranked = model.rank_items(2, R[2], selected)
        with pytest.warns(DeprecationWarning, match="recommend_all is deprecated"):
            everyone = model.recommend_all(R, N=3)
        results.append((ranked, everyone))
    (ranked, everyone), (their_ranked, their_everyone) = results
    reference = theirs.user_factors[[2]].astype(np.float64) @ theirs.item_factors.T
    reference[:, np.setdiff1d(np.arange(R.shape[1]), selected)] = np.nan
    assert_lists_agree(ranked, their_ranked, reference, [4])
    assert everyone.shape == their_everyone.shape and everyone.dtype == their_everyone.dtype
    assert np.mean(everyone == their_everyone) > 0.95  # random factors: ties are rare


# ------------------------------------------------------------------ files, pickles, API surface

@pytest.mark.parametrize("target", ["path", "path-without-suffix", "bytesio"])
def test_files_move_both_ways(tmp_path, target):
    R, theirs, ours = pair("negative")
    ours.fit(R, show_progress=False)  # a fastunlearn-fitted model, with its data

    def place(name):
        if target == "bytesio":
            return io.BytesIO()
        # a str: implicit's load appends ".npz" to str paths only
        return str(tmp_path / (name if target == "path-without-suffix" else name + ".npz"))

    def rewind(where):
        if hasattr(where, "seek"):
            where.seek(0)
        return where

    their_file, our_file = place("theirs"), place("ours")
    theirs.save(their_file)
    ours.save(our_file)
    from_theirs = fu.AlternatingLeastSquares.load(rewind(their_file))
    from_ours = ImplicitCPU.load(rewind(our_file))
    for got, expected in ((from_theirs, theirs), (from_ours, ours)):
        for attr in ("factors", "regularization", "alpha", "iterations", "use_cg", "cg_steps",
                     "calculate_training_loss", "num_threads", "use_native", "random_state"):
            assert getattr(got, attr) == getattr(expected, attr), attr
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got.user_factors, expected.user_factors)
        for a, b in zip(got.recommend([0, 1, 2], R[[0, 1, 2]], N=5),
                        expected.recommend([0, 1, 2], R[[0, 1, 2]], N=5)):
            np.testing.assert_array_equal(a, b)
    # an implicit file holds no interactions: it serves, and takes over to forget
    with pytest.raises(fu.NotFittedError, match="from_implicit"):
        from_theirs.forget([0], [R[0].indices[0]])
    taken = fu.ImplicitALS.from_implicit(rewind(their_file), R)
    assert taken.forget([0], [R[0].indices[0]]).converged


def test_pickle_and_to_cpu_keep_serving():
    import pickle

    R, theirs, ours = pair("random")
    for clone in (pickle.loads(pickle.dumps(ours)), ours.to_cpu()):
        assert type(clone) is fu.AlternatingLeastSquares and clone is not ours
        for a, b in zip(clone.recommend(0, R[0]), theirs.recommend(0, R[0])):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert clone.loss() == ours.loss()


def _public(obj):
    return {name for name in dir(obj) if not name.startswith("_")}


def test_every_public_member_of_implicit_exists_with_its_signature():
    _, theirs, ours = pair("random")
    missing = _public(theirs) - _public(ours)
    assert not missing
    for name in sorted(_public(theirs)):
        member = getattr(type(theirs), name, None)
        if callable(member):  # methods and the classmethod load: the same parameters
            assert inspect.signature(getattr(ours, name)).parameters == \
                inspect.signature(getattr(theirs, name)).parameters, name
        elif name == "solver":  # a callable (test_solver_is_implicits_half_sweep)
            assert callable(ours.solver)
        elif isinstance(member, property):  # norms and Grams: arrays alike
            ours_value, their_value = getattr(ours, name), getattr(theirs, name)
            assert ours_value.shape == their_value.shape, name
            assert ours_value.dtype == their_value.dtype, name
        elif not name.endswith("_factors"):  # hyperparameters, cg_steps, fit_callback
            assert getattr(ours, name) == getattr(theirs, name), name
    # the constructor is the factory's, default of use_gpu aside (implicit:
    # whether CUDA is there; fastunlearn: False)
    ours_sig = inspect.signature(fu.AlternatingLeastSquares)
    their_sig = inspect.signature(implicit.als.AlternatingLeastSquares)
    assert list(ours_sig.parameters) == list(their_sig.parameters)
    for name, parameter in their_sig.parameters.items():
        if name != "use_gpu":
            assert ours_sig.parameters[name].default == parameter.default, name
    assert ours_sig.parameters["use_gpu"].default is False
    with pytest.raises(ValueError, match="no GPU support"):
        fu.AlternatingLeastSquares(use_gpu=True)


def test_solver_is_implicits_half_sweep():
    R, theirs, ours = pair("negative")
    C = (PARAMS["alpha"] * R).tocsr()
    for use_cg in (True, False):
        theirs.use_cg = ours.use_cg = use_cg
        X_theirs = theirs.user_factors.copy()
        X_ours = X_theirs.copy()
        theirs.solver(C, X_theirs, theirs.item_factors, PARAMS["regularization"], num_threads=1)
        ours.solver(C, X_ours, theirs.item_factors, PARAMS["regularization"], num_threads=1)
        np.testing.assert_allclose(X_ours, X_theirs, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ evaluation API

from implicit import evaluation as implicit_evaluation  # noqa: E402

from fastunlearn import evaluation as ev  # noqa: E402

METRIC_FUNCTIONS = {"precision": "precision_at_k", "map": "mean_average_precision_at_k",
                    "ndcg": "ndcg_at_k", "auc": "AUC_at_k"}


def test_evaluation_functions_have_implicits_signatures():
    for name in ("train_test_split", "ranking_metrics_at_k", *METRIC_FUNCTIONS.values()):
        ours, theirs = getattr(ev, name), getattr(implicit_evaluation, name)
        assert str(inspect.signature(ours)) == str(inspect.signature(theirs)), name


def _ratings_with_everything(seed=5):
    """Negative and zero entries, duplicates, an empty user: what the split
    has to drop, sum or keep."""
    R = sp.random(60, 45, density=0.2, format="coo", random_state=seed, dtype=np.float32)
    R.data = np.ceil(R.data * 5)
    R.data[::7] *= -1
    R.data[::11] = 0
    row = np.append(R.row, R.row[:5])
    col = np.append(R.col, R.col[:5])
    data = np.append(R.data, np.ones(5, np.float32))
    R = sp.coo_matrix((data, (row, col)), shape=R.shape)
    R.row[R.row == 3] = 4  # user 3 has no entries
    return R


@pytest.mark.parametrize("convert", [sp.coo_matrix, sp.csr_matrix])
@pytest.mark.parametrize("train_percentage", [0.8, 0.5, 0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 3, None])
def test_train_test_split_is_implicits(convert, train_percentage, seed):
    R = convert(_ratings_with_everything())
    ours = ev.train_test_split(R, train_percentage, random_state=seed)
    theirs = implicit_evaluation.train_test_split(R, train_percentage=train_percentage,
                                                  random_state=seed)
    if seed is None:  # unseeded: only what does not depend on the draw
        theirs = ours
    for a, b in zip(ours, theirs):
        assert type(a) is sp.csr_matrix and a.shape == R.shape and a.dtype == R.dtype
        np.testing.assert_array_equal(a.toarray(), b.toarray())
        assert a.nnz == b.nnz
    train, test = ours
    assert (test.data > 0).all()  # negatives and zeros never reach test
    kept = sp.csr_matrix(R)
    assert train.nnz + test.nnz <= kept.nnz
    assert train.nnz == pytest.approx(train_percentage * kept.nnz, abs=0.2 * kept.nnz)


def test_train_test_split_takes_a_generator_and_a_random_state():
    R = _ratings_with_everything()
    a = ev.train_test_split(R, random_state=np.random.default_rng(9))
    b = implicit_evaluation.train_test_split(R, random_state=np.random.default_rng(9))
    np.testing.assert_array_equal(a[1].toarray(), b[1].toarray())
    c = ev.train_test_split(R, random_state=np.random.RandomState(9))  # implicit 0.7.3 fails
    d = ev.train_test_split(R, random_state=np.random.RandomState(9))
    np.testing.assert_array_equal(c[1].toarray(), d[1].toarray())


@pytest.mark.parametrize("bad, match", [
    ({"train_percentage": 1.5}, "train_percentage must be a number in \\[0, 1\\], got 1.5"),
    ({"train_percentage": "0.8"}, "train_percentage"),
    ({"ratings": np.ones((3, 3))}, "ratings must be a 2-D scipy.sparse matrix, got ndarray"),
])
def test_train_test_split_bad_arguments(bad, match):
    kwargs = {"ratings": _ratings_with_everything(), **bad}
    with pytest.raises(ValueError, match=match):
        ev.train_test_split(**kwargs)


def _assert_metrics_agree(model, train, test, K):
    theirs = implicit_evaluation.ranking_metrics_at_k(model, train, test, K=K,
                                                      show_progress=False)
    ours = ev.ranking_metrics_at_k(model, train, test, K=K, show_progress=False)
    assert set(ours) == set(theirs) == set(METRIC_FUNCTIONS)
    for key, name in METRIC_FUNCTIONS.items():
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), key
        single = getattr(ev, name)(model, train, test, K=K, show_progress=False)
        assert single == pytest.approx(ours[key], rel=1e-12), name


@pytest.mark.parametrize("fitted_by", ["implicit", "fastunlearn"])
@pytest.mark.parametrize("K", [1, 10])
def test_ranking_metrics_are_implicits_on_movielens(movielens, fitted_by, K):
    """The same split and the same model: the same four numbers (the issue's
    report: fastunlearn's old precision_at_k and AUC gave other ones)."""
    train, test = ev.train_test_split(movielens, 0.8, random_state=1)
    params = {"factors": 16, "iterations": 4, "random_state": 0}
    if fitted_by == "implicit":
        model = ImplicitCPU(num_threads=1, **params)
        model.fit(train, show_progress=False)
    else:
        model = fu.AlternatingLeastSquares(**params).fit(train, show_progress=False)
    _assert_metrics_agree(model, train, test, K)


@pytest.mark.parametrize("name", ["random", "empty", "negative", "checkerboard"])
def test_ranking_metrics_are_implicits_on_small_problems(name):
    """Test entries that are also in train (implicit counts them), users
    without test entries, ties, lists past the candidates (K=40)."""
    R, theirs, ours = pair(name)
    train, test = ev.train_test_split(R, 0.6, random_state=2)
    positives = sp.csr_matrix(R.multiply(R > 0)).tocoo()
    overlap = sp.csr_matrix((np.ones(len(positives.row[::4]), test.dtype),
                             (positives.row[::4], positives.col[::4])), shape=R.shape)
    test = (test + overlap).tocsr()  # every 4th liked train entry is in test too
    test.data[:] = 1
    for model in (theirs, ours):
        for K in (3, 40):
            if name == "checkerboard" and K == 3:
                continue  # tied scores: the lists may differ (both are right)
            _assert_metrics_agree(model, train, test, K)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, tr, te: ev.ranking_metrics_at_k(m, tr, te, K=0), ValueError, "K must be >= 1"),
    (lambda m, tr, te: ev.precision_at_k(m, tr, te[:, :-1]), ValueError, "same shape"),
    (lambda m, tr, te: ev.ndcg_at_k(m, tr.toarray(), te), ValueError, "train_user_items must"),
    (lambda m, tr, te: ev.AUC_at_k(fu.AlternatingLeastSquares(), tr, te), ValueError,
     "not fitted"),
    (lambda m, tr, te: ev.mean_average_precision_at_k(m, tr, sp.csr_matrix(te.shape)),
     ZeroDivisionError,
     "no user has a test entry"),
])
def test_ranking_metrics_bad_arguments(call, error, match):
    R, _, ours = pair("random")
    train, test = ev.train_test_split(R, random_state=0)
    with pytest.raises(error, match=match):
        call(ours, train, test)
