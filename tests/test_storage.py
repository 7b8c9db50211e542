"""The retained interactions (``storage.TrainingData``) against SciPy: both
orientations hold the matrix, removal in place leaves exactly the other
entries (and zeros in the spare capacity), the undo record restores the
buffers bit for bit, and wiping it leaves no copy of what was removed.
"""
import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from conftest import examples
from fastunlearn.storage import TrainingData
from fastunlearn.validation import check_user_items


def matrix(seed, n_users, n_items, density):
    R = sp.random(n_users, n_items, density=density, random_state=seed, format="csr",
                  dtype=np.float32)
    R.data[:] = np.random.default_rng(seed).integers(1, 6, R.nnz)  # no stored zeros
    return check_user_items(R, np.float32)


def same(buffers, expected):
    """The buffers hold exactly the canonical CSR ``expected`` (values and
    index arrays, sorted indices)."""
    expected = sp.csr_matrix(expected)
    expected.sort_indices()
    indptr, indices, data = buffers.arrays()
    assert buffers.nnz == expected.nnz and buffers.shape == expected.shape
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(data, expected.data)


def snapshot(buffers):
    return (buffers.nnz, buffers.indptr.copy(), buffers.indices.copy(), buffers.data.copy())


problems = st.tuples(st.integers(0, 10_000), st.integers(1, 12), st.integers(1, 12),
                     st.sampled_from([0.1, 0.4, 0.9]))


@examples(40)
@given(problems)
def test_both_orientations_hold_the_matrix(problem):
    R = matrix(*problem)
    data = TrainingData(R.copy())
    assert data.shape == R.shape and data.nnz == R.nnz
    same(data.by_user, R)
    same(data.by_item, R.T.tocsr())
    assert data.side("users") is data.by_user and data.side("items") is data.by_item
    np.testing.assert_array_equal(data.counts("users"), np.diff(R.indptr))
    np.testing.assert_array_equal(data.counts("items"), np.diff(R.tocsc().indptr))
    assert data.counts("users").dtype == np.int64
    got = data.user_items()
    assert got.has_sorted_indices and (got != R).nnz == 0
    # the kernels need one integer width for indptr and indices of both sides
    for side in (data.by_user, data.by_item):
        assert side.indptr.dtype == side.indices.dtype


@examples(40)
@given(problems)
def test_positions_find_the_stored_pairs_and_only_those(problem):
    R = matrix(*problem)
    data = TrainingData(R.copy())
    dense = R.toarray()
    rows, cols = np.meshgrid(np.arange(R.shape[0]), np.arange(R.shape[1]), indexing="ij")
    rows, cols = rows.ravel().astype(np.int64), cols.ravel().astype(np.int64)
    found = data.by_user.positions(rows, cols)
    stored = dense[rows, cols] != 0
    assert np.all((found >= 0) == stored)
    indptr, indices, values = data.by_user.arrays()
    hit = found[stored]
    np.testing.assert_array_equal(indices[hit], cols[stored])
    np.testing.assert_array_equal(values[hit], dense[rows, cols][stored])
    assert np.all((indptr[rows[stored]] <= hit) & (hit < indptr[rows[stored] + 1]))
    # the item-major side, queried (item, user)
    found_i = data.by_item.positions(cols, rows)
    assert np.all((found_i >= 0) == stored)


@examples(60)
@given(problems, st.data())
def test_removal_leaves_the_rest_and_its_undo_restores_every_bit(problem, draw):
    R = matrix(*problem)
    data = TrainingData(R.copy())
    coo = R.tocoo()
    k = draw.draw(st.integers(0, R.nnz))
    pick = np.asarray(draw.draw(st.permutations(range(R.nnz)))[:k], dtype=np.int64)
    users, items = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)
    before = {side: snapshot(data.side(side)) for side in ("users", "items")}
    pos_u = np.sort(data.by_user.positions(users, items))
    pos_i = np.sort(data.by_item.positions(items, users))
    undo_u, undo_i = data.by_user.remove(pos_u), data.by_item.remove(pos_i)

    kept = R.tolil()
    kept[users, items] = 0
    kept = kept.tocsr()
    kept.eliminate_zeros()
    same(data.by_user, kept)
    same(data.by_item, kept.T.tocsr())
    assert data.nnz == R.nnz - k
    for side in ("users", "items"):
        buffers = data.side(side)
        # the spare capacity keeps nothing of the removed entries
        assert not buffers.indices[buffers.nnz:].any() and not buffers.data[buffers.nnz:].any()
    # the undo record holds exactly the removed values until wiped
    removed = np.sort(R.toarray()[users, items])
    np.testing.assert_array_equal(np.sort(undo_u.data), removed)
    np.testing.assert_array_equal(np.sort(undo_u.indices), np.sort(items))
    np.testing.assert_array_equal(np.sort(undo_i.indices), np.sort(users))

    data.by_item.restore(undo_i)
    data.by_user.restore(undo_u)
    for side in ("users", "items"):
        nnz, indptr, indices, values = before[side]
        buffers = data.side(side)
        assert buffers.nnz == nnz
        for got, want in zip((buffers.indptr, buffers.indices, buffers.data),
                             (indptr, indices, values)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    same(data.by_user, R)

    # removing again, then wiping the record: no copy of the values is left
    undo = data.by_user.remove(pos_u)
    undo.wipe()
    assert not undo.data.any() and not undo.indices.any()


def test_removing_whole_rows_first_and_last():
    R = check_user_items(sp.csr_matrix(np.array(
        [[1, 2, 0], [0, 3, 0], [4, 0, 5], [0, 0, 6]], dtype=np.float32)), np.float32)
    data = TrainingData(R.copy())
    # all of user 0, all of the last user, one entry in between
    users, items = np.array([0, 0, 3, 2]), np.array([0, 1, 2, 0])
    undo = data.by_user.remove(np.sort(data.by_user.positions(users, items)))
    np.testing.assert_array_equal(data.by_user.indptr, [0, 0, 1, 2, 2])
    same(data.by_user, np.array([[0, 0, 0], [0, 3, 0], [0, 0, 5], [0, 0, 0]]))
    np.testing.assert_array_equal(data.by_user.indices[2:6], 0)
    np.testing.assert_array_equal(data.by_user.data[2:6], 0)
    assert undo.nnz == 6
    data.by_user.restore(undo)
    same(data.by_user, R)
    # an empty removal changes nothing
    undo = data.by_user.remove(np.zeros(0, np.int64))
    same(data.by_user, R)
    data.by_user.restore(undo)
    same(data.by_user, R)


def test_user_items_is_a_view_of_the_buffers():
    """The matrix handed out shares the buffers (no copy of the data set)."""
    R = matrix(1, 8, 6, 0.4)
    data = TrainingData(R.copy())
    view = data.user_items()
    assert np.shares_memory(view.data, data.by_user.data)
    assert np.shares_memory(view.indices, data.by_user.indices)


def test_compiled_edits_refuse_positions_outside_the_buffer():
    """The in-place kernels raise instead of writing past the buffer (or
    reading past the CSR) when a caller's preconditions are broken, and
    leave the buffer untouched."""
    import pytest

    from fastunlearn import _csr

    indptr, indices = np.array([0, 2, 3], np.int32), np.array([0, 2, 1], np.int32)
    for positions in ([-1], [3], [1, 1], [2, 1]):
        buf = indices.copy()
        with pytest.raises(ValueError, match="positions"):
            _csr.compact(buf, 3, np.array(positions, np.int64))
        with pytest.raises(ValueError, match="positions"):
            _csr.expand(buf, 3, np.array(positions, np.int64), buf[:len(positions)])
        np.testing.assert_array_equal(buf, indices)
    with pytest.raises(ValueError, match="outside the buffer"):
        _csr.compact(indices.copy(), 4, np.array([0], np.int64))
    with pytest.raises(TypeError):
        _csr.compact(None, 3, np.array([0], np.int64))
    with pytest.raises(IndexError, match="outside the matrix"):
        _csr.find_positions(indptr, indices, np.array([2], np.int64), np.array([0], np.int64))
    # and within bounds they work as before
    np.testing.assert_array_equal(
        _csr.find_positions(indptr, indices, np.array([0, 1, 0], np.int64),
                            np.array([2, 1, 1], np.int64)), [1, 2, -1])
