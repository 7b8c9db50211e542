"""A repeated erasure request through the command line: a no-op that says so
with --missing ignore, an error naming the earlier receipt without it, never
"unknown"; serving a forgotten user says the same."""
import hashlib
import json
import os

import numpy as np
import pytest

import fastunlearn
from fastunlearn import tombstones
from fastunlearn.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("repeat")
    rows = [(f"u{u}", f"i{i}") for u in range(1, 21) for i in range(1, 13) if (u * i) % 4]
    (d / "data.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    assert main(["fit", str(d / "data.csv"), "-o", str(d / "model.npz"), "--factors", "4",
                 "--iterations", "3", "--seed", "0", "--quiet"]) == 0
    assert main(["forget", str(d / "model.npz"), "--users", "u3", "-o", str(d / "once.npz"),
                 "--quiet"]) == 0
    return d


def cli(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_forgetting_a_user_again_names_the_earlier_receipt(fitted, capsys):
    before = os.path.getmtime(fitted / "once.npz")
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--users", "u3", "--in-place")
    assert status == 2
    assert "already forgotten: 'u3' (receipt 1, " in err and "unknown" not in err
    history = fastunlearn.load(fitted / "once.npz").metadata["history"]
    assert history[0]["time"] in err
    assert os.path.getmtime(fitted / "once.npz") == before


def test_repeat_with_missing_ignore_is_a_no_op(fitted, capsys):
    path = fitted / "once.npz"
    before = path.read_bytes()
    status, out, _ = cli(capsys, "forget", path, "--users", "u3", "--in-place",
                         "--missing", "ignore", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["n_removed"] == 0
    assert report["skipped"] == {"forgotten_users": ["u3"]}
    assert path.read_bytes() == before  # nothing rewritten, no receipt added
    status, out, _ = cli(capsys, "forget", path, "--users", "u3", "nobody", "u5",
                         "--missing", "ignore", "-o", fitted / "twice.npz")
    assert status == 0 and "skipped, forgotten users: 1: 'u3'" in out
    assert "skipped, unknown users:   1: 'nobody'" in out
    model = fastunlearn.load(fitted / "twice.npz")
    assert len(model.metadata["history"]) == 2  # u5's request only
    assert tombstones.forgotten(["u3", "u5", "u6"], model.metadata["user_ids"]) == {"u3": 1, "u5": 2}


def test_pairs_of_a_forgotten_user(fitted, capsys):
    (fitted / "pairs.csv").write_text("user,item\nu3,i1\nu3,i2\nu5,i1\nu2,i2\n")
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--pairs", fitted / "pairs.csv",
                         "-o", fitted / "p.npz")
    assert status == 2 and "already forgotten: 'u3'" in err
    assert not (fitted / "p.npz").exists()
    status, out, _ = cli(capsys, "forget", fitted / "once.npz", "--pairs", fitted / "pairs.csv",
                         "-o", fitted / "p.npz", "--missing", "ignore", "--json")
    report = json.loads(out)
    # u5 holds i1, u2 not i2 (2 * 2 % 4 == 0): one removed, u2-i2 and u3's two skipped
    assert report["n_removed"] == 1
    # ids listed; pairs only counted (a retry's pairs are erased data)
    assert report["skipped"] == {"forgotten_users": ["u3"],
                                 "pairs_with_unknown_or_forgotten_ids": 2, "pairs_not_stored": 1}
    status, out, _ = cli(capsys, "forget", fitted / "once.npz", "--pairs", fitted / "pairs.csv",
                         "-o", fitted / "p.npz", "--missing", "ignore")
    lines = {k: v.strip() for k, v in (line.split(": ", 1) for line in out.splitlines()
                                       if ": " in line)}
    assert lines["skipped, forgotten users"] == "1: 'u3'"
    assert lines["skipped, pairs with unknown or forgotten ids"] == "2"
    assert lines["skipped, pairs not stored"] == "1"
    assert "i2" not in out


def test_errors_about_a_pairs_file_name_the_file_and_line(fitted, capsys):
    path = fitted / "bad.csv"
    path.write_text("user,item\nu5,i1\n\nu6,i1\nnobody,i1\nu3,i1\n")
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--pairs", path,
                         "-o", fitted / "bad.npz")
    # the first line holding a forgotten or unknown id; line numbers count blanks
    assert status == 2 and f"{path}, line 5: user ids already forgotten: 'u3'" in err
    assert "also 1 unknown" in err
    path.write_text("user,item\nu5,i1\n\nu6,i1\nnobody,i1\n")
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--pairs", path,
                         "-o", fitted / "bad.npz")
    assert status == 2 and f"{path}, line 5: 1 unknown user id: 'nobody'" in err
    path.write_text("item;user\ni1;u5\ni99;u6\n")  # another delimiter and column order
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--pairs", path,
                         "-o", fitted / "bad.npz")
    assert status == 2 and f"{path}, line 3: 1 unknown item id: 'i99'" in err
    path.write_text("user,item\nu5,i1\nu2,i2\n")  # u2 does not hold i2
    status, _, err = cli(capsys, "forget", fitted / "once.npz", "--pairs", path,
                         "-o", fitted / "bad.npz")
    assert status == 2 and f"{path}, line 3: 1 pair of 2 not stored in the model " \
                           "(forgotten before, or never there); pass --missing ignore" in err
    assert "i2" not in err
    assert not (fitted / "bad.npz").exists()


def test_items_are_tombstoned_too(fitted, capsys):
    path = fitted / "items.npz"
    status, _, _ = cli(capsys, "forget", fitted / "once.npz", "--items", "i5", "-o", path,
                       "--quiet")
    assert status == 0
    model = fastunlearn.load(path)
    assert "i5" not in model.metadata["item_ids"].tolist()
    receipt = len(model.metadata["history"]) - (model.metadata["history"][-1].get("event")
                                                == "settle")
    assert tombstones.forgotten(["i5", "i6"], model.metadata["item_ids"]) == {"i5": receipt}
    status, _, err = cli(capsys, "forget", path, "--items", "i5", "--in-place")
    assert status == 2 and f"item ids already forgotten: 'i5' (receipt {receipt}" in err
    assert "unknown" not in err
    before = path.read_bytes()
    status, out, _ = cli(capsys, "forget", path, "--items", "i5", "--in-place", "--missing",
                         "ignore", "--json")
    assert status == 0 and json.loads(out)["skipped"] == {"forgotten_items": ["i5"]}
    assert json.loads(out)["n_removed"] == 0 and path.read_bytes() == before
    status, _, err = cli(capsys, "similar", path, "--item", "i5")
    assert status == 2 and "already forgotten: 'i5'" in err
    # a forgotten item is never served, nor its tombstone shown (every user
    # lost i5, so it would be a candidate for each)
    for user in ("u2", "u6", "u10"):
        status, out, _ = cli(capsys, "recommend", path, "--user", user, "-n", "12", "--json")
        served = [r["item"] for r in json.loads(out)["results"]]
        assert status == 0 and served and all(i.startswith("i") and i != "i5" for i in served)
    status, out, _ = cli(capsys, "similar", path, "--item", "i1", "-n", "12", "--json")
    served = [r["item"] for r in json.loads(out)["results"]]
    assert served and "i5" not in served and all(i.startswith("i") for i in served)


def test_recommend_for_a_forgotten_user_says_so(fitted, capsys):
    status, _, err = cli(capsys, "recommend", fitted / "once.npz", "--user", "u3")
    assert status == 2 and "already forgotten: 'u3' (receipt 1" in err
    assert "--missing" not in err
    status, _, err = cli(capsys, "recommend", fitted / "once.npz", "--user", "nobody")
    assert status == 2 and "1 unknown user id: 'nobody'" in err


def test_tombstone_keeps_a_hash_not_the_id():
    ids = np.array(["alice", "bob", "carol"])
    out = tombstones.tombstoned(ids, [1], receipt=4)
    assert out[0] == "alice" and out[2] == "carol" and "bob" not in out[1]
    digest = hashlib.sha256(b"fastunlearn forgotten id\x00bob").hexdigest()[:16]
    assert out[1] == f"{tombstones.PREFIX}1:{digest}:4"
    assert tombstones.forgotten([" bob ", "alice", "dave"], out) == {" bob ": 4}
    # a second forget keeps the first receipt; integer ids match their strings
    assert tombstones.tombstoned(out, [1], receipt=9)[1] == out[1]
    ints = tombstones.tombstoned(np.array([7, 8]), [0], receipt=1)
    assert tombstones.forgotten(["007", 7, "8"], ints) == {"007": 1, 7: 1}
