"""The receipt of a request binds exactly its set of (user, item) pairs.

``verify_receipt(users, items, key, digest)`` must accept the request that
was carried out, in any order and with repeats, and reject every other
one: a request that differs in one item, in one user, by one pair added or
one removed, or pairs the same users and items make up differently.  Nor
can it be checked without its key.  The reference below recomputes the
digest independently (HMAC-SHA256 of the sorted distinct pairs as
little-endian int64), so a receipt saved by one version stays verifiable.
"""
import datetime
import hashlib
import hmac
import secrets
import struct

import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import fastunlearn as fu
from conftest import examples
from fastunlearn.forgetting import digest_pairs, make_receipt, unique_pairs

N_USERS, N_ITEMS = 40, 30


def reference_digest(users, items, key):
    """HMAC-SHA256 under ``key`` of the distinct pairs, sorted by user then
    item, each packed as two little-endian int64."""
    pairs = sorted(set(zip(map(int, users), map(int, items))))
    return hmac.new(key, b"".join(struct.pack("<qq", u, i) for u, i in pairs),
                    hashlib.sha256).hexdigest()


def receipt_of(pairs):
    """(users, items, hex key, digest) of a request for ``pairs``."""
    users, items = (np.array(c, dtype=np.int64) for c in zip(*pairs))
    digest, key = make_receipt(users, items)
    return users, items, key, digest


def verifies(pairs, key, digest):
    users, items = (np.array(c, dtype=np.int64) for c in zip(*pairs)) if pairs \
        else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return fu.verify_receipt(users, items, key, digest)


requests = st.sets(st.tuples(st.integers(0, N_USERS - 1), st.integers(0, N_ITEMS - 1)),
                   min_size=1, max_size=25).map(sorted)


@examples(60)
@given(requests, st.randoms(use_true_random=False))
def test_receipt_verifies_for_the_same_pairs_in_any_order(pairs, rnd):
    users, items, key, digest = receipt_of(pairs)
    assert digest == reference_digest(users, items, bytes.fromhex(key))
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert verifies(shuffled, key, digest)
    # a pair named twice is the same request (forget removes it once)
    assert verifies(shuffled + [rnd.choice(pairs)], key, digest)


@examples(60)
@given(requests, st.data())
def test_receipt_rejects_a_request_that_differs_in_one_item(pairs, data):
    users, items, key, digest = receipt_of(pairs)
    k = data.draw(st.integers(0, len(pairs) - 1))
    user, item = pairs[k]
    # another item of the same user: the user column alone cannot tell
    other = data.draw(st.integers(0, N_ITEMS - 1).filter(lambda i: (user, i) not in pairs))
    changed = pairs[:k] + [(user, other)] + pairs[k + 1:]
    assert not verifies(changed, key, digest)


@examples(60)
@given(requests, st.data())
def test_receipt_rejects_a_request_that_differs_in_one_user(pairs, data):
    users, items, key, digest = receipt_of(pairs)
    k = data.draw(st.integers(0, len(pairs) - 1))
    user, item = pairs[k]
    other = data.draw(st.integers(0, N_USERS - 1).filter(lambda u: (u, item) not in pairs))
    changed = pairs[:k] + [(other, item)] + pairs[k + 1:]
    assert not verifies(changed, key, digest)


@examples(60)
@given(requests, st.data())
def test_receipt_rejects_one_pair_added(pairs, data):
    users, items, key, digest = receipt_of(pairs)
    # often a user (or an item) already in the request
    user = data.draw(st.one_of(st.sampled_from([u for u, _ in pairs]),
                               st.integers(0, N_USERS - 1)))
    item = data.draw(st.one_of(st.sampled_from([i for _, i in pairs]),
                               st.integers(0, N_ITEMS - 1)))
    if (user, item) in pairs:
        item = next(i for i in range(N_ITEMS) if (user, i) not in pairs)
    assert not verifies(pairs + [(user, item)], key, digest)


@examples(60)
@given(requests, st.data())
def test_receipt_rejects_one_pair_removed(pairs, data):
    users, items, key, digest = receipt_of(pairs)
    k = data.draw(st.integers(0, len(pairs) - 1))
    assert not verifies(pairs[:k] + pairs[k + 1:], key, digest)


@examples(60)
@given(requests.filter(lambda p: len({u for u, _ in p}) > 1 and len({i for _, i in p}) > 1),
       st.randoms(use_true_random=False))
def test_receipt_rejects_the_same_users_and_items_paired_differently(pairs, rnd):
    users, items, key, digest = receipt_of(pairs)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    repaired = sorted(set(zip(users.tolist(), shuffled)))
    if repaired != pairs:
        assert not verifies(repaired, key, digest)
    # two users swap an item (both columns keep their values): rejected
    a, b = next((a, b) for a in pairs for b in pairs
                if a[0] != b[0] and a[1] != b[1])
    swapped = set(pairs) - {a, b} | {(a[0], b[1]), (b[0], a[1])}
    if swapped != set(pairs):
        assert not verifies(sorted(swapped), key, digest)


@examples(40)
@given(requests)
def test_receipt_never_verifies_without_its_key(pairs):
    users, items, key, digest = receipt_of(pairs)
    assert verifies(pairs, key, digest)
    # any other key, one bit off included, gives another digest
    raw = bytes.fromhex(key)
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    for other in (secrets.token_bytes(32), flipped, bytes(32)):
        assert not fu.verify_receipt(users, items, other.hex(), digest)
    assert not fu.verify_receipt(users, items, "", digest)
    # nor does an unkeyed hash of the pairs (or one under an empty key) match
    packed = np.stack(unique_pairs(users, items), axis=1).astype("<i8").tobytes()
    assert digest not in {hashlib.sha256(packed).hexdigest(),
                          hmac.new(b"", packed, hashlib.sha256).hexdigest()}
    # each request gets its own key: the same pairs, another digest
    again, key_again = make_receipt(users, items)
    assert key_again != key and again != digest


def test_digest_pairs_is_the_keyed_hash_of_the_distinct_sorted_pairs():
    key = bytes(range(32))
    users, items = np.array([3, 1, 3, 1, 2]), np.array([0, 5, 0, 2, 9])
    assert digest_pairs(users, items, key) == reference_digest(users, items, key)
    # the empty request has a receipt too, and only the empty request matches it
    empty = digest_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), key)
    assert empty == hmac.new(key, b"", hashlib.sha256).hexdigest()
    assert not fu.verify_receipt([0], [0], key.hex(), empty)


def test_receipt_of_a_forget_binds_the_removed_items_of_one_user():
    """The case the user column alone misses: the receipt of forgetting some
    of one user's items does not verify for her other stored items."""
    rng = np.random.default_rng(3)
    dense = (rng.random((N_USERS, N_ITEMS)) < 0.4).astype(np.float32)
    dense[0, :8] = 1.0
    model = fu.ImplicitALS(factors=4, iterations=3, random_state=0).fit(
        sp.csr_matrix(dense), show_progress=False)
    report = model.forget([0, 0, 0], [1, 4, 6])
    assert fu.verify_receipt([0, 0, 0], [6, 1, 4], report.receipt_key, report.digest)
    stored_after = model.user_items[0].indices  # her items still in the model
    assert len(stored_after) and not np.isin(stored_after, [1, 4, 6]).any()
    for item in stored_after:
        assert not fu.verify_receipt([0, 0, 0], [1, 4, item], report.receipt_key,
                                     report.digest)
        assert not fu.verify_receipt([0], [item], report.receipt_key, report.digest)
    assert model.metadata["history"][-1]["digest"] == report.digest


def _utc(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def _now_to_the_second():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def test_history_records_what_each_request_and_settle_did(tmp_path):
    """The receipt in ``metadata["history"]`` holds what the README lists
    (counts, certificate after, tolerance, converged, settled, pending, a UTC
    time, digest) with the report's values; a settle() adds its own record."""
    rng = np.random.default_rng(5)
    R = sp.random(N_USERS, N_ITEMS, density=0.3, random_state=5, format="csr",
                  dtype=np.float32)
    model = fu.ImplicitALS(factors=4, iterations=5, random_state=0).fit(R, show_progress=False)
    coo = model.user_items.tocoo()
    pick = rng.choice(coo.nnz, 7, replace=False)
    users, items = coo.row[pick], coo.col[pick]
    start = _now_to_the_second()
    report = model.forget(users, items, washout=0)
    record = dict(model.metadata["history"][-1])
    assert start <= _utc(record.pop("time")) <= _now_to_the_second()
    assert record == {
        "digest": report.digest, "n_removed": 7, "users_affected": len(set(users.tolist())),
        "items_affected": len(set(items.tolist())),
        "certificate_after": report.certificate_after.max_row,
        "tolerance": report.tolerance, "converged": report.converged, "settled": False,
        "pending_entries": 7}
    assert report.converged and report.n_removed == 7 and report.pending_entries == 7
    assert fu.verify_receipt(users, items, report.receipt_key, record["digest"])

    settled = model.settle()
    record = dict(model.metadata["history"][-1])
    assert start <= _utc(record.pop("time")) <= _now_to_the_second()
    assert record == {"event": "settle", "entries": 7, "requests": 1,
                      "certificate_after": settled.certificate_after.max_row,
                      "tolerance": settled.tolerance, "converged": settled.converged}
    assert settled.converged and len(model.metadata["history"]) == 2
    # both survive a save and a load
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    assert loaded.metadata["history"] == model.metadata["history"]


def test_unique_pairs_gives_the_distinct_pairs_sorted_as_int64():
    users = np.array([[3, 1], [3, 2]], dtype=np.int32)  # any integer dtype and shape
    items = np.array([[0, 5], [0, 9]], dtype=np.uint16)
    got_users, got_items = unique_pairs(users, items)
    assert got_users.dtype == got_items.dtype == np.int64
    assert list(zip(got_users.tolist(), got_items.tolist())) == [(1, 5), (2, 9), (3, 0)]
