"""Removed data leaves the undo copies too (README, "Gone from the model"):
after a forget, the undo records the engine kept of the removal hold
nothing of the removed entries, whether the request succeeded or was
rolled back."""
import numpy as np
import pytest

from fastunlearn import storage
from test_forgetting import fitted, random_pairs


@pytest.fixture
def records(monkeypatch):
    """Every undo record a removal creates during the test."""
    made = []
    remove = storage._CSRBuffers.remove

    def keep(self, positions):
        record = remove(self, positions)
        made.append(record)
        return record

    monkeypatch.setattr(storage._CSRBuffers, "remove", keep)
    return made


@pytest.mark.parametrize("washout", ["auto", 0])
def test_a_forget_wipes_its_undo_records(records, washout):
    model = fitted("explicit", seed=2)
    users, items = random_pairs(model, 15, seed=4)
    values = np.asarray(model.user_items[users, items]).ravel()
    assert values.all()  # the removed values are there to be found
    model.forget(users, items, washout=washout)
    assert len(records) == 2  # one per orientation
    for record in records:
        assert len(record.data) == 15  # it held the removal
        assert not record.data.any() and not record.indices.any()


def test_a_rolled_back_forget_wipes_its_undo_records(records, monkeypatch):
    from fastunlearn.forgetting import local

    model = fitted("implicit", seed=2)
    before = model.user_items.copy()

    def fail(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(local.LocalBackend, "masked_pass", fail)
    with pytest.raises(KeyboardInterrupt):
        model.forget(*random_pairs(model, 3, seed=1), washout=0)
    assert (model.user_items != before).nnz == 0  # put back
    assert len(records) == 2
    for record in records:
        assert not record.data.any() and not record.indices.any()
