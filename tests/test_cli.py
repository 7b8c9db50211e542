"""End-to-end tests of the command line (``python -m fastunlearn ...``)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import pytest

import fastunlearn
from fastunlearn.data import to_external, to_internal

PKG_ROOT = str(Path(fastunlearn.__file__).resolve().parents[1])


def run(cwd, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fastunlearn", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def one_line_error(result, status=2):
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastunlearn: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A CSV with string ids and a model fitted on it through the CLI."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    rows = {(f"u{rng.integers(1, 31)}", f"i{rng.integers(1, 21)}") for _ in range(250)}
    rows |= {(f"u{u}", "i1") for u in range(1, 31)}  # every user appears
    rows |= {("u1", f"i{i}") for i in range(1, 21)}  # every item appears
    lines = ["user,item,value"] + [f"{u},{i},{1 + rng.integers(0, 3)}" for u, i in sorted(rows)]
    (d / "data.csv").write_text("\n".join(lines) + "\n")
    ok(run(d, "fit", "data.csv", "-o", "model.npz", "--factors", "8", "--iterations", "5",
           "--seed", "1", "--quiet"))
    return d


def test_help(tmp_path):
    out = ok(run(tmp_path, "--help")).stdout
    for cmd in ("demo", "fit", "forget", "recommend", "similar", "audit", "info"):
        assert cmd in out


def test_fit_saves_id_maps(workdir):
    model = fastunlearn.load(workdir / "model.npz")
    assert model.metadata["user_ids"].dtype.kind == "U"
    assert "u30" in model.metadata["user_ids"].tolist()
    assert model.user_factors.shape == (30, 8)


def test_forget_then_recommend_matches_api(workdir):
    d = workdir
    # forget one user by external id
    r = ok(run(d, "forget", "model.npz", "--users", "u3", "-o", "m1.npz", "--json"))
    report = json.loads(r.stdout)
    assert report["n_removed"] > 0 and report["users_affected"] == 1
    m1 = fastunlearn.load(d / "m1.npz")
    row = to_internal("u3", fastunlearn.load(d / "model.npz").metadata["user_ids"])
    assert m1.user_items[row].nnz == 0

    # forget pairs from a file, ids mapped through the model's maps: the file's
    # own (sorted) maps differ from the model's, so a wrong mapping would show
    (d / "pairs.csv").write_text("user,item\nu7,i1\nu1,i20\n")
    r = ok(run(d, "forget", "m1.npz", "--pairs", "pairs.csv", "-o", "m2.npz"))
    assert "removed:" in r.stdout and "digest:" in r.stdout
    m2 = fastunlearn.load(d / "m2.npz")
    users, items = m2.metadata["user_ids"], m2.metadata["item_ids"]
    for u, i in (("u7", "i1"), ("u1", "i20")):
        ur, ic = to_internal(u, users), to_internal(i, items)
        assert m1.user_items[ur, ic] != 0 and m2.user_items[ur, ic] == 0
    assert m2.user_items.nnz == m1.user_items.nnz - 2
    assert len(m2.metadata["history"]) == 2

    # recommend through the CLI equals the Python API on the loaded model
    r = ok(run(d, "recommend", "m2.npz", "--user", "u7", "-n", "5", "--json"))
    got = json.loads(r.stdout)
    row = to_internal("u7", users)
    ids, scores = m2.recommend(row, m2.user_items[row], N=5)
    ids = ids[ids >= 0]
    assert [x["item"] for x in got["results"]] == to_external(ids, items).tolist()
    np.testing.assert_allclose([x["score"] for x in got["results"]], scores[:len(ids)],
                               rtol=1e-5)
    assert "i1" not in [x["item"] for x in got["results"]] or \
        m2.user_items[row, to_internal("i1", items)] == 0

    # plain-text output lists the same items, under a header
    text = ok(run(d, "recommend", "m2.npz", "--user", "u7", "-n", "5")).stdout
    assert text.splitlines()[0].split() == ["rank", "item", "score"]
    assert [ln.split()[1] for ln in text.strip().splitlines()[1:]] == \
        [x["item"] for x in got["results"]]

    # similar items
    r = json.loads(ok(run(d, "similar", "m2.npz", "--item", "i2", "-n", "3", "--json")).stdout)
    assert len(r["results"]) == 3 and "i2" not in [x["item"] for x in r["results"]]


def test_info_json_lists_receipts(workdir):
    d = workdir
    r = ok(run(d, "forget", "model.npz", "--items", "i5", "-o", "m_items.npz", "--json"))
    digest = json.loads(r.stdout)["digest"]
    info = json.loads(ok(run(d, "info", "m_items.npz", "--json")).stdout)
    assert info["kind"] == "implicit"
    assert info["users"] == 30 and info["items"] == 20 and info["factors"] == 8
    assert info["history"][-1]["digest"] == digest
    assert set(info["certificate"]) == {"max_row", "frobenius"}
    text = ok(run(d, "info", "m_items.npz")).stdout
    assert digest in text and "certificate:" in text
    # forget saves a settled model; a washout deferred in the request is a
    # settle record after its receipt
    assert info["pending"] == {"entries": 0, "requests": 0}
    # one relaxed washout since the fit: the next one refits
    # (forgetting.RELAXED_BETWEEN_FITS), and the file says so
    assert info["washouts"] == {"relaxed_since_fit": 1, "policy": "default",
                                "next_refits": True}
    assert "1 relaxed; the next refits (policy default)" in text
    r = json.loads(ok(run(d, "forget", "m_items.npz", "--users", "u3", "-o", "m_u3.npz",
                          "--washout", "0", "--json")).stdout)
    assert r["washout"] == 0 and r["settle"]["entries"] == r["n_removed"]
    info = json.loads(ok(run(d, "info", "m_u3.npz", "--json")).stdout)
    assert info["pending"]["entries"] == 0
    assert r["settle"]["refit"] and info["washouts"]["relaxed_since_fit"] == 0
    assert [h["event"] for h in info["history"][-2:]] == [None, "settle"]
    assert info["history"][-2]["settled"] is False
    assert "washout of" in ok(run(d, "info", "m_u3.npz")).stdout


def test_malformed_file_exits_2(workdir, tmp_path):
    (tmp_path / "bad.csv").write_text("user,item,value\nu1,i1,1\nu2\nu3,i3,1\n")
    line = one_line_error(run(tmp_path, "fit", "bad.csv", "-o", "x.npz"))
    assert "bad.csv" in line and "line 3" in line
    assert not (tmp_path / "x.npz").exists()
    one_line_error(run(tmp_path, "fit", "missing.csv", "-o", "x.npz"))


def test_unknown_user_leaves_model_untouched(workdir):
    d = workdir
    before = (d / "model.npz").read_bytes()
    line = one_line_error(run(d, "forget", "model.npz", "--users", "nobody", "--in-place"))
    assert "nobody" in line
    assert (d / "model.npz").read_bytes() == before
    one_line_error(run(d, "recommend", "model.npz", "--user", "nobody"))


def test_refuses_to_overwrite_without_in_place(workdir):
    d = workdir
    before = (d / "model.npz").read_bytes()
    one_line_error(run(d, "forget", "model.npz", "--users", "u2", "-o", "model.npz"))
    one_line_error(run(d, "forget", "model.npz", "--users", "u2"))
    assert (d / "model.npz").read_bytes() == before


def test_usage_error_exits_2(tmp_path):
    one_line_error(run(tmp_path, "forget"))
    one_line_error(run(tmp_path, "info", "nope.npz"))


def test_model_without_interactions_exits_2(tmp_path):
    # what implicit's save writes (and fastunlearn reads to serve): factors only
    np.savez(tmp_path / "implicit.npz", user_factors=np.ones((3, 2), np.float32),
             item_factors=np.ones((4, 2), np.float32), factors=np.array(2))
    for args in (("info", "implicit.npz"), ("recommend", "implicit.npz", "--user", "0"),
                 ("forget", "implicit.npz", "--users", "0", "--in-place")):
        line = one_line_error(run(tmp_path, *args))
        assert "implicit.npz" in line and "from_implicit" in line


def test_demo_tiny(tmp_path):
    r = ok(run(tmp_path, "demo", "--users", "300", "--items", "100", "--nnz", "3000"))
    for section in ("cost", "certificate", "nDCG@10", "held-out test pairs",
                    "retrain from scratch", "of a retrain", "converged", "forget (default)",
                    "forget, washout=0", "retrains, seeds 0-2"):
        assert section in r.stdout
    assert "too few pairs to judge (n = " in r.stdout and "(largest gap" in r.stdout
    assert r.stdout.isascii()


def test_demo_reports_what_audit_reports_gives(tmp_path):
    """The demo prints audit.reports' figures for its data, nothing of its own."""
    from fastunlearn import audit
    from fastunlearn.synthetic import make_implicit

    r = ok(run(tmp_path, "demo", "--users", "300", "--items", "100", "--nnz", "3000"))
    default, plain = audit.reports(make_implicit(300, 100, 3000, seed=0), fraction=0.01,
                                   how="random", seed=0, repeats=3, washouts=("auto", 0),
                                   factors=32, iterations=15, regularization=0.05, alpha=1.0,
                                   shadows=8)  # the demo's default
    keys = ("score_auc", "rank_auc", "lira_auc", "lira_offline_auc")
    for label, report in (("forget (default)", default), ("forget, washout=0", plain)):
        mia = report.completeness["forget"]
        assert f"{label:<22}" + "".join(f" {mia[key]:>16.4f}" for key in keys) in r.stdout
        # 24 forgotten pairs: too few for a verdict, and the demo says so
        assert report.verdict() is audit.Verdict.TOO_FEW_PAIRS
        assert f"{label:<22} too few pairs to judge (n = " \
               f"{mia['n_forgotten']}; at least " in r.stdout


# ---------------------------------------------------------------- audit

def _api_test_matrix(model, rows):
    """The test pairs a CLI audit uses, mapped with the model's id maps (known ids only)."""
    import scipy.sparse as sp

    users, items = model.metadata["user_ids"].tolist(), model.metadata["item_ids"].tolist()
    known = [(users.index(u), items.index(i), v) for u, i, v in rows
             if u in users and i in items]
    r, c, v = (np.array(x) for x in zip(*known))
    return sp.csr_matrix((v.astype(np.float32), (r, c)), shape=model.user_items.shape), \
        len(rows) - len(known)


def test_audit_matches_api(workdir):
    from fastunlearn.audit import fairness_gap
    from fastunlearn.evaluation import ranking_metrics

    d = workdir
    rng = np.random.default_rng(3)
    rows = sorted({(f"u{rng.integers(1, 34)}", f"i{rng.integers(1, 23)}") for _ in range(120)})
    rows = [(u, i, 1.0) for u, i in rows]  # u31..u33, i21, i22 are unknown to the model
    (d / "test.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i, _ in rows))
    got = json.loads(ok(run(d, "audit", "model.npz", "--test", "test.csv", "--k", "5",
                            "--json")).stdout)

    model = fastunlearn.load(d / "model.npz")
    test, skipped = _api_test_matrix(model, rows)
    assert skipped > 0
    assert (got["interactions"], got["used"], got["skipped"]) == \
        (len(rows), len(rows) - skipped, skipped)
    assert got["unknown_users"] == len({u for u, _, _ in rows} - {f"u{n}" for n in range(1, 31)})
    assert got["unknown_items"] == len({i for _, i, _ in rows} - {f"i{n}" for n in range(1, 21)})
    expected = ranking_metrics(model, model.user_items, test, k=5)
    assert got["users_evaluated"] == expected.pop("n_users")
    assert got["metrics"] == pytest.approx(expected)
    assert got["fairness"] == pytest.approx(fairness_gap(model, test, k=5).to_dict())
    assert got["in_training_data"] == model.user_items.multiply(test).nnz

    text = ok(run(d, "audit", "model.npz", "--test", "test.csv", "--k", "5")).stdout
    assert "ndcg@5:" in text and "fairness gap" in text
    assert f"{skipped} skipped" in text
    assert f"{expected['ndcg']:.4f}" in text


def test_audit_completeness_matches_api(workdir, tmp_path):
    """forget --pairs, then audit --forgotten: the API's completeness test."""
    from fastunlearn import audit

    d = workdir
    model = fastunlearn.load(d / "model.npz")
    users, items = model.metadata["user_ids"], model.metadata["item_ids"]
    coo = model.user_items.tocoo()
    pick = np.random.default_rng(4).choice(coo.nnz, 12, replace=False)
    forgot = [(users[coo.row[j]], items[coo.col[j]]) for j in pick]
    (tmp_path / "forget.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in forgot))
    ok(run(d, "forget", "model.npz", "--pairs", str(tmp_path / "forget.csv"), "-o",
           str(tmp_path / "forgot.npz"), "--quiet"))
    # held-out pairs: unstored pairs of the forgetting users (a stand-in test split)
    held = sorted({(users[coo.row[j]], f"i{n}") for j in pick for n in range(1, 21)}
                  - {(users[r], items[c]) for r, c in zip(coo.row, coo.col)})
    (tmp_path / "test.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in held))
    got = json.loads(ok(run(d, "audit", str(tmp_path / "forgot.npz"), "--test",
                            str(tmp_path / "test.csv"), "--forgotten",
                            str(tmp_path / "forget.csv"), "--json")).stdout)["completeness"]
    forgotten_model = fastunlearn.load(tmp_path / "forgot.npz")
    test, _ = _api_test_matrix(forgotten_model, [(u, i, 1.0) for u, i in held])
    expected = audit.completeness(forgotten_model, (coo.row[pick], coo.col[pick]), test)
    assert got["pairs_unknown"] == 0
    assert got["forget"] == pytest.approx(expected.forget)
    assert len(got["retrains"]) == len(expected.retrains) == 3
    for mine, theirs in zip(got["retrains"], expected.retrains):
        assert mine == pytest.approx(theirs)
    assert got["complete"] == expected.complete
    text = ok(run(d, "audit", str(tmp_path / "forgot.npz"), "--test",
                  str(tmp_path / "test.csv"), "--forgotten", str(tmp_path / "forget.csv"))).stdout
    assert "completeness, rank attacker" in text and "complete:" in text
    assert "likelihood-ratio" not in text  # off unless asked for

    # --shadows adds the likelihood-ratio attacker, as the API measures it
    # (the file's pairs carry value 1, as a matrix of them does)
    got = json.loads(ok(run(d, "audit", str(tmp_path / "forgot.npz"), "--test",
                            str(tmp_path / "test.csv"), "--forgotten",
                            str(tmp_path / "forget.csv"), "--shadows", "4",
                            "--json")).stdout)["completeness"]
    pairs = sp.csr_matrix((np.ones(len(pick)), (coo.row[pick], coo.col[pick])),
                          shape=coo.shape)
    expected = audit.completeness(forgotten_model, pairs, test, shadows=4)
    assert got["shadows"] == 4 and set(got["gaps"]) == set(audit.ATTACKERS)
    assert got["forget"] == pytest.approx(expected.forget)
    for mine, theirs in zip(got["retrains"], expected.retrains):
        assert mine == pytest.approx(theirs)
    assert got["complete"] == expected.complete
    text = ok(run(d, "audit", str(tmp_path / "forgot.npz"), "--test",
                  str(tmp_path / "test.csv"), "--forgotten", str(tmp_path / "forget.csv"),
                  "--shadows", "4")).stdout
    assert "completeness, likelihood-ratio attacker" in text
    assert "completeness, likelihood-ratio offline attacker" in text
    for bad, message in ((("--shadows", "4"), "--shadows needs --forgotten"),
                         (("--forgotten", str(tmp_path / "forget.csv"), "--shadows", "5"),
                          "--shadows must be 0 or an even number >= 4, got 5")):
        line = one_line_error(run(d, "audit", str(tmp_path / "forgot.npz"), "--test",
                                  str(tmp_path / "test.csv"), *bad))
        assert message in line


def test_audit_explicit_model_matches_api(workdir, tmp_path):
    from fastunlearn.audit import fairness_gap
    from fastunlearn.evaluation import mae, rmse

    d = workdir
    ok(run(d, "fit", "data.csv", "-o", "explicit.npz", "--explicit", "--factors", "4",
           "--iterations", "3", "--seed", "0", "--quiet"))
    rows = [("u1", "i1", 2.0), ("u2", "i1", 3.0), ("u5", "i7", 1.0), ("nobody", "i1", 5.0)]
    (tmp_path / "ratings.csv").write_text(
        "user,item,rating\n" + "".join(f"{u},{i},{v}\n" for u, i, v in rows))
    got = json.loads(ok(run(d, "audit", "explicit.npz", "--test", tmp_path / "ratings.csv",
                            "--json")).stdout)
    model = fastunlearn.load(d / "explicit.npz")
    test, skipped = _api_test_matrix(model, rows)
    assert got["kind"] == "explicit" and got["skipped"] == skipped == 1
    assert got["metrics"] == pytest.approx({"rmse": rmse(model, test), "mae": mae(model, test)})
    assert got["fairness"] == pytest.approx(fairness_gap(model, test).to_dict())
    assert got["fairness"]["metric"] == "rmse"


def test_audit_bad_input_exits_2(workdir, tmp_path):
    d = workdir
    (tmp_path / "bad.csv").write_text("user,item,value\nu1,i1,1\nu2,i2\n")
    line = one_line_error(run(d, "audit", "model.npz", "--test", tmp_path / "bad.csv"))
    assert "bad.csv" in line and "line 3" in line
    (tmp_path / "strangers.csv").write_text("user,item\nx1,y1\nx2,y2\n")
    line = one_line_error(run(d, "audit", "model.npz", "--test", tmp_path / "strangers.csv"))
    assert "known to the model" in line
    one_line_error(run(d, "audit", "model.npz", "--test", tmp_path / "strangers.csv",
                       "--k", "0"))


def test_forget_exact_certificate_matches_loaded_model(workdir):
    d = workdir
    r = json.loads(ok(run(d, "forget", "model.npz", "--users", "u5", "-o", "exact.npz",
                          "--exact-certificate", "--json")).stdout)
    assert r["certificate_after"]["exact"] and r["converged"]
    model = fastunlearn.load(d / "exact.npz")
    assert model.certificate().max_row == pytest.approx(r["certificate_after"]["max_row"],
                                                        rel=1e-9)
    bound = json.loads(ok(run(d, "forget", "model.npz", "--users", "u5", "-o", "bound.npz",
                              "--json")).stdout)["certificate_after"]
    assert not bound["exact"]
    assert bound["max_row"] >= r["certificate_after"]["max_row"] * (1 - 1e-9)


def test_forget_washout_matches_api(workdir):
    d = workdir
    r = json.loads(ok(run(d, "forget", "model.npz", "--users", "u4", "-o", "washed.npz",
                          "--washout", "2", "--json")).stdout)
    original = fastunlearn.load(d / "model.npz")
    assert r["washout"] == 2
    # two over-relaxed sweeps and one plain one
    assert r["rows_solved_by_phase"]["washout"] == 3 * sum(original.user_items.shape)
    report = original.forget_users([to_internal("u4", original.metadata["user_ids"])],
                                   washout=2)
    washed = fastunlearn.load(d / "washed.npz")
    np.testing.assert_array_equal(washed.user_factors, original.user_factors)
    np.testing.assert_array_equal(washed.item_factors, original.item_factors)
    assert r["rows_solved"] == report.rows_solved
    assert "washout" in one_line_error(run(d, "forget", "model.npz", "--users", "u4", "-o",
                                           "bad.npz", "--washout", "-1"))
    # --washout refit: the library's refit, any model
    r = json.loads(ok(run(d, "forget", "model.npz", "--users", "u4", "-o", "refit.npz",
                          "--washout", "refit", "--json")).stdout)
    assert r["refit"] and r["washout"] == 5  # the fit's iterations
    original = fastunlearn.load(d / "model.npz")
    original.forget_users([to_internal("u4", original.metadata["user_ids"])], washout="refit")
    refitted = fastunlearn.load(d / "refit.npz")
    np.testing.assert_array_equal(refitted.user_factors, original.user_factors)


def test_forget_of_a_plain_explicit_model_says_it_refitted(workdir):
    """A plain explicit model's washout refits from its saved seed: the
    command line says so, and its result is the API's (itself a retrain,
    tests/test_forgetting.py)."""
    d = workdir
    ok(run(d, "fit", "data.csv", "-o", "ratings.npz", "--explicit", "--factors", "4",
           "--iterations", "3", "--seed", "2", "--quiet"))
    out = ok(run(d, "forget", "ratings.npz", "--users", "u3", "-o", "refitted.npz")).stdout
    assert "in this request (a refit from the model's seed)" in out
    original = fastunlearn.load(d / "ratings.npz")
    report = original.forget_users([to_internal("u3", original.metadata["user_ids"])])
    assert report.refit and report.washout == 3
    refitted = fastunlearn.load(d / "refitted.npz")
    np.testing.assert_array_equal(refitted.user_factors, original.user_factors)
    np.testing.assert_array_equal(refitted.item_factors, original.item_factors)


def test_forget_users_drops_their_external_id(workdir):
    d = workdir
    ok(run(d, "forget", "model.npz", "--users", "u4", "-o", "no-u4.npz", "--quiet"))
    model = fastunlearn.load(d / "no-u4.npz")
    before = fastunlearn.load(d / "model.npz")
    ids = model.metadata["user_ids"].tolist()
    assert "u4" not in ids and len(ids) == len(before.metadata["user_ids"])
    row = to_internal("u4", before.metadata["user_ids"])
    assert model.user_items[row].nnz == 0
    # other users keep their ids and rows
    for uid in ("u1", "u7"):
        assert to_internal(uid, model.metadata["user_ids"]) == \
            to_internal(uid, before.metadata["user_ids"])
    assert "u4" in one_line_error(run(d, "recommend", "no-u4.npz", "--user", "u4"))


def test_forget_pairs_ignore_matches_ids_as_raise_does(tmp_path):
    """--missing ignore skips unknown ids but matches known ones exactly as the
    default does: "007" is the integer user 7, as everywhere in the CLI."""
    rows = [(u, i) for u in range(1, 13) for i in range(1, 9) if (u + i) % 3]
    (tmp_path / "data.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    ok(run(tmp_path, "fit", "data.csv", "-o", "model.npz", "--factors", "4",
           "--iterations", "3", "--seed", "0", "--quiet"))
    assert fastunlearn.load(tmp_path / "model.npz").metadata["user_ids"].dtype.kind == "i"
    (tmp_path / "one.csv").write_text("user,item\n007,3\n")
    (tmp_path / "with-unknown.csv").write_text("user,item\n007,3\n999,3\n7,99\n")
    raised = json.loads(ok(run(tmp_path, "forget", "model.npz", "--pairs", "one.csv",
                               "-o", "raise.npz", "--json")).stdout)
    ignored = json.loads(ok(run(tmp_path, "forget", "model.npz", "--pairs", "with-unknown.csv",
                                "--missing", "ignore", "-o", "ignore.npz", "--json")).stdout)
    assert raised["n_removed"] == ignored["n_removed"] == 1
    a, b = fastunlearn.load(tmp_path / "raise.npz"), fastunlearn.load(tmp_path / "ignore.npz")
    row, col = (to_internal(x, a.metadata[key]) for x, key in ((7, "user_ids"), (3, "item_ids")))
    assert a.user_items[row, col] == 0 and b.user_items[row, col] == 0
    assert (a.user_items != b.user_items).nnz == 0
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    line = one_line_error(run(tmp_path, "forget", "model.npz", "--pairs", "with-unknown.csv",
                              "-o", "x.npz"))
    assert "999" in line and not (tmp_path / "x.npz").exists()

    # forgetting a user of an integer id map replaces its id as for string ids
    ok(run(tmp_path, "forget", "model.npz", "--users", "007", "-o", "no-7.npz", "--quiet"))
    ids = fastunlearn.load(tmp_path / "no-7.npz").metadata["user_ids"].tolist()
    assert "7" not in ids and "8" in ids and len(ids) == 12
