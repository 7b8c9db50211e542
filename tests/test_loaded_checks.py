"""What ``load`` checks in a fastunlearn file beyond tests/test_hostile_files.py:
a refusal names the file, the member and, where two parts disagree, both
values; optional members may be absent; and what loads is the model that
was saved, empty trailing items and a two-entry matrix included (checked
against the arrays written)."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from conftest import make_model, problem
from test_hostile_files import assert_refused, good_file, variant  # noqa: F401 - the fixture "good"


def test_a_hyperparameters_member_that_is_no_string_is_refused_naming_the_file(good, tmp_path):
    path = variant(tmp_path, good[1], hyperparameters=np.array(3))
    assert_refused(path, "'hyperparameters' must be a scalar")  # names the file too


def test_a_file_without_a_forget_history_loads_with_an_empty_one(good, tmp_path):
    path, arrays, model = good
    loaded = fu.load(variant(tmp_path, arrays, history=None))
    assert loaded.metadata["history"] == []
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    np.testing.assert_array_equal(loaded.user_items.toarray(), model.user_items.toarray())


def test_implicits_copy_of_a_hyperparameter_is_checked_naming_the_file_and_both_values(
        good, tmp_path):
    arrays = good[1]
    assert "factors" in arrays and int(arrays["factors"]) == 3
    assert_refused(variant(tmp_path, arrays, factors=np.array(3.5)),
                   r"'factors' must be a scalar of kind 'iu'")
    error = assert_refused(variant(tmp_path, arrays, factors=np.array(5)),
                           "member 'factors'")
    assert "(5)" in str(error) and "(3)" in str(error)  # the member's value, the JSON's


@pytest.mark.parametrize("member", ["indptr", "indices"])
def test_a_csr_member_of_the_wrong_form_is_refused_naming_it(good, tmp_path, member):
    bad = good[1][member].reshape(1, -1)
    assert_refused(variant(tmp_path, good[1], **{member: bad}),
                   f"'{member}' must be a 1-D numeric array")


def test_two_entries_repeated_in_one_row_are_refused(tmp_path):
    R = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 2])), shape=(3, 4))
    _, X, Y = problem(62, n_users=3, n_items=4)
    model = make_model("implicit", X, Y, R)
    path = model.save(tmp_path / "two.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert len(arrays["data"]) == 2
    np.testing.assert_array_equal(fu.load(path).user_items.toarray(), R.toarray())
    repeated = arrays["indices"].copy()
    repeated[1] = repeated[0]
    assert_refused(variant(tmp_path, arrays, indices=repeated), "unsorted or duplicated")


def test_items_without_interactions_past_the_last_stored_one_load_as_items(tmp_path):
    # the last two items and the last user have no entry: the matrix keeps
    # the model's shape, not the one its indices would suggest
    R = sp.csr_matrix(([1.0, 2.0, 1.0], ([0, 1, 1], [0, 1, 2])), shape=(3, 5))
    _, X, Y = problem(63, n_users=3, n_items=5)
    model = make_model("implicit", X, Y, R)
    loaded = fu.load(model.save(tmp_path / "empty-tail.npz"))
    assert loaded.user_items.shape == (3, 5)
    np.testing.assert_array_equal(loaded.user_items.toarray(), R.toarray())
    assert loaded.recommend(2, loaded.user_items[2], N=5)[0].size == 5  # every item ranks


def test_a_history_member_that_is_no_string_is_refused_naming_the_file(good, tmp_path):
    assert_refused(variant(tmp_path, good[1], history=np.array(1)),
                   "'history' must be a scalar")


def test_a_file_of_the_other_kind_is_refused_by_an_estimators_load(good, tmp_path):
    path = good[0]
    assert isinstance(fu.ImplicitALS.load(path), fu.ImplicitALS)
    with pytest.raises(fu.ModelFileError, match="holds an implicit model, not a ExplicitALS") \
            as error:
        fu.ExplicitALS.load(path)
    assert str(path) in str(error.value)


# ------------------------------------------------------------------ file objects and names

def test_a_damaged_file_object_is_refused_under_its_name(good, tmp_path):
    import io

    with pytest.raises(fu.ModelFileError) as error:
        fu.load(io.BytesIO(b"not a model file"))
    assert str(error.value).startswith("<BytesIO>: ")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with open(bad, "rb") as fh, pytest.raises(fu.ModelFileError) as error:
        fu.load(fh)
    assert str(error.value).startswith(f"{bad}: ")


def test_a_missing_file_is_named_in_the_error(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError) as error:
        fu.load(missing)
    assert str(missing) in str(error.value)


def test_an_empty_archive_is_refused_as_such(tmp_path):
    import zipfile

    path = tmp_path / "empty.npz"
    zipfile.ZipFile(path, "w").close()
    assert_refused(path, "an empty archive")


# ------------------------------------------------------------------ .npy headers

def rewritten(tmp_path, arrays, member, version=None, array=None):
    """The file of ``arrays`` with ``member`` written as .npy ``version``."""
    import io
    import zipfile

    path = tmp_path / f"{member}-{version}.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            value = array if key == member and array is not None else value
            np.lib.format.write_array(buf, value, version=version if key == member else None)
            zf.writestr(key + ".npy", buf.getvalue())
    return path


def test_npy_members_of_version_2_load_and_of_version_3_are_refused_naming_them(good, tmp_path):
    _, arrays, model = good
    loaded = fu.load(rewritten(tmp_path, arrays, "user_factors", (2, 0)))
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    assert_refused(rewritten(tmp_path, arrays, "item_factors", (3, 0)),
                   r"'item_factors.npy' has unsupported \.npy version \(3, 0\)")


def test_a_member_of_a_zero_size_dtype_is_refused_naming_it(good, tmp_path):
    arrays = good[1]
    assert_refused(rewritten(tmp_path, arrays, "data", array=np.zeros(3, dtype="V0")),
                   "'data.npy' has a zero-size dtype")


def test_a_pickled_member_is_refused_naming_it(good, tmp_path):
    arrays = good[1]
    path = tmp_path / "objects.npz"
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            if key == "kind":
                value = np.array(["implicit"], dtype=object)
            np.lib.format.write_array(buf, value, allow_pickle=True)
            zf.writestr(key + ".npy", buf.getvalue())
    assert_refused(path, "'kind.npy' holds Python objects")


def test_item_ids_are_counted_against_the_items(good, tmp_path):
    arrays = good[1]  # 9 users, 7 items
    assert_refused(variant(tmp_path, arrays, item_ids=arrays["item_ids"][:-1]),
                   "'item_ids' has 6 ids for 7 rows")


def test_incomplete_kept_measures_are_refused_naming_the_file(tmp_path):
    R, X, Y = problem(64, n_users=9, n_items=7, negative=True)
    model = make_model("implicit", X, Y, R)
    model.certificate()  # measured, so the file keeps the measures
    path = model.save(tmp_path / "measured.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert "measures_user_norms" in arrays
    assert_refused(variant(tmp_path, arrays, measures_user_norms=None), "incomplete measures")


def test_a_file_too_large_for_memory_is_refused_naming_it(good, monkeypatch):
    path = good[0]
    monkeypatch.setenv("FASTUNLEARN_MEMORY_LIMIT", "1000")
    with pytest.raises(MemoryError) as error:
        fu.load(path)
    assert f"loading {path} needs" in str(error.value)
