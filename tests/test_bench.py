"""The benchmark suite cannot rot: ``bench/run.py all --quick`` runs end to end
(about 15 s on 2 cores) into a temporary folder and writes what it promises."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastunlearn

ROOT = Path(__file__).resolve().parents[1]
PKG_ROOT = str(Path(fastunlearn.__file__).resolve().parents[1])
RUN = ROOT / "bench" / "run.py"


def run_bench(command, out, cwd, **env):
    """``bench/run.py COMMAND --quick --out OUT`` in a subprocess, with this
    installation first on the path (and ``env`` added); asserts it succeeded."""
    if not RUN.exists():
        pytest.skip("bench/ is not part of this installation")
    env = {**os.environ, "PYTHONPATH": PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **env}
    proc = subprocess.run([sys.executable, str(RUN), command, "--quick", "--out", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results = ROOT / "bench" / "results"
    before = _snapshot(results)
    run_bench("all", out, out, OMP_NUM_THREADS="2")
    assert _snapshot(results) == before, "a quick run wrote into bench/results"
    return out


def _snapshot(folder):
    """(name, size, mtime_ns) of every file under ``folder``: catches rewrites too."""
    if not folder.exists():
        return []
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


def load_json(out, name):
    return json.loads((out / f"{name}.json").read_text())


def load(out, name):
    payload = json.loads((out / f"{name}-quick.json").read_text())
    assert {"machine", "date", "commit", "params"} <= set(payload)
    assert payload["commit"] is None or isinstance(payload["commit"], str)
    assert isinstance(payload["params"], dict) and payload["params"]
    assert {"python", "numpy", "scipy", "fastunlearn", "cpus", "blas"} <= set(payload["machine"])
    for lib in payload["machine"]["blas"] or []:
        assert {"internal_api", "version"} <= set(lib)
    assert (out / f"{name}-quick.md").read_text().startswith("| ")
    return payload


def test_fit_and_forget_quick(quick_results):
    fit = load(quick_results, "fit")
    assert fit["results"]
    assert {r["solver"] for r in fit["results"]} == {"cg", "cholesky"}
    assert all(r["fastunlearn"]["seconds_per_iteration"] > 0 for r in fit["results"])
    forget = load(quick_results, "forget")
    assert forget["results"]
    methods = ("forget", "cold", "no_washout", "full", "retrain")
    requests = [r for r in forget["results"] if r["scenario"] not in
                ("sequential", "load + forget user")]
    assert len(requests) == 5
    for record in requests:
        for method in methods:
            assert record[method]["runs"] and record[method]["seconds"] > 0
        assert record["no_washout"]["settled"] is False and record["retrain"]["settled"] is None
    (seq,) = [r for r in forget["results"] if r["scenario"] == "sequential"]
    assert seq["requests"] == 200 and len(seq["runs"]) == 1 and seq["seconds"] > 0
    assert 0 <= seq["pending_entries"] and seq["washouts"] > 0
    (loaded,) = [r for r in forget["results"] if r["scenario"] == "load + forget user"]
    assert loaded["seconds"] == pytest.approx(loaded["load_seconds"] + loaded["forget_seconds"])
    assert "Sequential requests" in (quick_results / "forget-quick.md").read_text()


def test_audit_quick(quick_results):
    audit = load(quick_results, "audit")
    assert audit["results"]
    sets = {(r["setting"]["how"], r["setting"]["fraction"], r["setting"]["washout"])
            for r in audit["results"]}
    assert sets == {(how, f, w) for how in ("random", "core", "edge") for f in (0.01, 0.05)
                    for w in ("auto", 0)}
    for r in audit["results"]:
        for axis in ("completeness", "utility", "fairness"):
            assert set(r[axis]) == {"original", "forget", "retrain"}
        assert {"score_auc", "rank_auc"} <= set(r["completeness"]["forget"])
        assert "ndcg" in r["utility"]["retrain"] and "gap" in r["fairness"]["original"]
        assert {"forget_seconds", "retrain_seconds", "ratio", "rows_solved"} <= \
            set(r["efficiency"])
        assert r["efficiency"]["forget_runs"] and r["efficiency"]["retrain_runs"]
    series = audit["curves"]["series"]
    assert set(series) == {"retrain", "forget (masked, tolerance sweep)",
                           "forget (full sweeps)", "forget (washout)"}
    for points in series.values():
        assert points and {"seconds", "certificate", "ndcg", "score_auc", "rank_auc"} <= \
            set(points[0])
    assert "Completeness against cost" in (quick_results / "audit-quick.md").read_text()
    (seq,) = audit["sequential"]  # quick: the audited setting only
    assert seq["requests"] == 200 and len(seq["retrains"]) == 1 and seq["seconds"] > 0
    assert seq["setting"] == {"factors": 16, "alpha": 1.0}
    for key in ("gaps", "settled_gaps"):
        assert set(seq[key]) == {"score_auc", "rank_auc"}
    assert isinstance(seq["complete"], bool) and isinstance(seq["settled_complete"], bool)
    assert "Sequential requests" in (quick_results / "audit-quick.md").read_text()
    # the likelihood-ratio section, spliced into the same Markdown
    lira = load_json(quick_results, "audit-lira-quick")
    (case,) = lira["results"]
    assert set(case["forgets"]) == {"auto", "0"} and len(case["retrains"]) == 2
    for model in (case["original"], *case["forgets"].values(), *case["retrains"]):
        assert 0 <= model["lira_auc"] <= 1 and 0 <= model["lira_offline_auc"] <= 1
    assert case["original"]["lira_auc"] > max(r["lira_auc"] for r in case["retrains"])
    text = (quick_results / "audit-quick.md").read_text()
    assert text.count("Likelihood-ratio attacker (LiRA)") == 1
    assert text.index("Sequential requests") < text.index("Likelihood-ratio attacker")


def test_scaling_quick(quick_results):
    scaling = load(quick_results, "scaling")
    assert [r["nnz"] for r in scaling["nnz"]] == sorted(r["nnz"] for r in scaling["nnz"])
    assert len(scaling["nnz"]) >= 2 and len(scaling["factors"]) >= 2
    # where the sweeps meet (20k entries, factors 8) the factors sweep reuses the point
    assert scaling["factors"][0] == scaling["nnz"][0]
    for r in scaling["nnz"] + scaling["factors"]:
        for key in ("fit_per_iteration", "forget_user", "forget_1pct"):
            assert r[key]["seconds"] > 0 and r[key]["runs"]
        for key in ("forget_user", "forget_1pct"):
            assert r[key]["cold_seconds"] > 0 and r[key]["cold_runs"]
        assert r["forget_1pct"]["removed"] == max(1, math.floor(0.01 * r["nnz"] + 0.5))
    dist = scaling["distributed"]
    if dist is not None:  # dask installed (the test extra has it)
        for key in ("forget_user", "forget_10_users", "forget_1pct"):
            assert dist[key]["removed"] > 0 and dist[key]["bytes_sent"] > 0
        assert dist["forget_user"]["bytes_sent"] < dist["forget_1pct"]["bytes_sent"]


def test_quick_plots(quick_results):
    pytest.importorskip("matplotlib")
    for name in ("audit-quick-curves", "scaling-quick-nnz", "scaling-quick-factors"):
        assert (quick_results / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cluster_quick(tmp_path):
    """``bench/run.py cluster --quick``: the Dask section alone, the same record
    as scaling's."""
    pytest.importorskip("distributed")
    run_bench("cluster", tmp_path, tmp_path, OMP_NUM_THREADS="1")
    dist = load(tmp_path, "cluster")["distributed"]
    for key in ("forget_user", "forget_10_users", "forget_1pct"):
        assert dist[key]["removed"] > 0 and dist[key]["bytes_sent"] > 0
    assert dist["fit_per_iteration"]["seconds"] > 0


def test_serve_quick(tmp_path):
    """``bench/run.py serve --quick``: every index measured, a one-user
    forget updated (not rebuilt) each, HNSW's recall near exact."""
    pytest.importorskip("faiss")
    pytest.importorskip("hnswlib")
    run_bench("serve", tmp_path, tmp_path, OMP_NUM_THREADS="1")
    result = load(tmp_path, "serve")
    assert len(result["indexes"]) == 3
    for name, index in result["indexes"].items():
        assert 0 < min(index["moved_rows"]) < result["size"]["items"] // 2, name
        assert 0 <= index["recall_at_10"] <= 1
    hnsw = [v for k, v in result["indexes"].items() if k.startswith("hnsw")][0]
    assert hnsw["recall_at_10"] >= 0.95


def test_data_quick(tmp_path):
    """``bench/run.py data --quick``: both pipelines on the same files, ratios,
    and the bad-value row naming its line; nothing written to the repository."""
    before = _snapshot(ROOT / "bench" / "results")
    run_bench("data", tmp_path / "out", tmp_path, TMPDIR=str(tmp_path))
    assert _snapshot(ROOT / "bench" / "results") == before
    payload = load(tmp_path / "out", "data")
    timed = [r for r in payload["results"] if "time_ratio" in r]
    assert {r["format"] for r in timed} == {"csv", "parquet"}
    for r in timed:
        assert r["time_ratio"] > 0 and r["peak_over_result"] > 0
        assert r["fastunlearn"]["result_bytes"] == r["reference"]["result_bytes"]
    bad = [r for r in payload["results"] if "bad_line" in r]
    assert bad and f"line {bad[0]['bad_line']}:" in bad[0]["fastunlearn"]["error"]


def test_parity_rate_tallies_misses_and_bias_as_computed_by_hand():
    """bench/parity_rate.py's verdicts on two made-up sets of four retrains:
    a forget within and one past the check, a fresh retrain within and one
    past; the bias, its standard error and Fisher's p worked out by hand."""
    if not (ROOT / "bench" / "parity_rate.py").exists():
        pytest.skip("bench/ is not part of this installation")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import parity_rate
    finally:
        sys.path.remove(str(ROOT / "bench"))

    def aucs(lira, others=0.50, offline=None):
        return {"score_auc": others, "rank_auc": others, "lira_auc": lira,
                "lira_offline_auc": others if offline is None else offline}

    flat = [aucs(0.50)] * 4
    # seed 3 lands 0.02 from seed 0 on every attacker: past max(0.01, spread 0)
    wide = [aucs(0.50)] * 3 + [aucs(0.52, 0.52, 0.52)]
    sets = [(flat, aucs(0.505, offline=0.505)), (wide, aucs(0.53))]
    results = [{"label": "implicit 32, 5", "how": "random", "fraction": 0.01,
                "retrains": retrains, "retrain_seconds": 1.0,
                "forgets": {"auto": {**forget, "seconds": 0.1}}}
               for retrains, forget in sets]
    (row,) = parity_rate.tally(results, "auto")
    assert (row["forget_misses"], row["fresh_misses"], row["fresh_checks"]) == (1, 1, 2)
    assert row["above_all"] == 2 and row["expected_above_all"] == pytest.approx(2 / 5)
    # LiRA: 0.505 - 0.5 and 0.53 - 0.505; offline: 0.505 - 0.5 and 0.5 - 0.505
    lira, offline = row["bias"]["lira_auc"], row["bias"]["lira_offline_auc"]
    assert lira == pytest.approx((0.015, 0.01)) and offline == pytest.approx((0.0, 0.005))
    # one-sided Fisher on [[1, 1], [1, 1]]: 1 - P(no miss among the forget's 2) = 1 - 1/6
    assert row["p"] == pytest.approx(5 / 6)
