"""Run mutmut over one recorded scope of docs/mutation.md, each with its own
fast test selection.

mutmut reads one ``[tool.mutmut]`` table, so a scope whose functions every
test calls (``state.fingerprint``, ``storage.TrainingData``) would run the
whole configured selection for each surviving mutant: ten minutes a mutant
on the shared 2-core machine.  This script copies the package (with its
built kernels) and the tests into ``.mutation/SCOPE/``, writes there a
``pyproject.toml`` holding only that scope's configuration, and runs mutmut
in that directory, ``nice``d.  From the repository root, after
``python setup.py build_ext --inplace``::

    python tools/mutation_run.py SCOPE [--children N] [--fresh]
    python tools/mutation_run.py SCOPE --results     # the verdicts, summed

The run can be stopped and started again: mutmut keeps its verdicts in
``.mutation/SCOPE/mutants/`` (``--fresh`` deletes them first).
"""
import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"

# the parametrisations of the all-or-nothing test that run a minute each on
# the shared machine (the weighted ones check the same rollback in seconds)
NOT_SLOW = ("not masked_sweeps_switch and not tight_tolerance and not movielens_forget "
            "and not default_forget and not sequential_small and not sigkill "
            "and not cli_output and not command_line "
            "and not (all_or_nothing and (implicit or explicit))")

SCOPES = {
    "state_storage": dict(
        mutate=["fastunlearn/state.py", "fastunlearn/storage.py"],
        patterns=["fastunlearn.state.*", "fastunlearn.storage.*"],
        tests=["tests/test_storage.py", "tests/test_persistence.py",
               "tests/test_forgetting.py", "tests/test_interrupt.py", "tests/test_models.py",
               "tests/test_implicit_compat.py::test_pickle_and_to_cpu_keep_serving"],
        k=NOT_SLOW + " and not relaxed_sweep_is_als"),
    "forgetting": dict(
        mutate=["fastunlearn/forgetting/engine.py", "fastunlearn/forgetting/local.py",
                "fastunlearn/forgetting/options.py", "fastunlearn/forgetting/requests.py"],
        patterns=["fastunlearn.forgetting.engine.*", "fastunlearn.forgetting.local.*",
                  "fastunlearn.forgetting.options.*", "fastunlearn.forgetting.requests.*"],
        tests=["tests/test_settle.py", "tests/test_receipts.py", "tests/test_forgetting.py",
               "tests/test_interrupt.py", "tests/test_forget_requests.py",
               "tests/test_partial_fit_rows.py",
               "tests/test_drop_in.py::test_partial_fit_users_replaces_rows_last_one_winning"],
        k=NOT_SLOW),
    # the completeness verdict: gaps, DeLong intervals, too few pairs, and
    # the report's verdict methods (the end-to-end MovieLens checks run in
    # about a second each; the long forgets of test_completeness.py do not)
    "audit": dict(
        mutate=["fastunlearn/audit/membership.py", "fastunlearn/audit/intervals.py",
                "fastunlearn/audit/report.py"],
        patterns=[*(f"fastunlearn.audit.membership.x_{name}__*" for name in (
                      "gaps", "within", "verdict_of", "verdict_text", "interval",
                      "sampling_intervals", "completeness")),
                  "fastunlearn.audit.membership.xǁCompletenessǁ*",
                  "fastunlearn.audit.intervals.*",
                  *(f"fastunlearn.audit.report.xǁAuditReportǁ{name}__*"
                    for name in ("completeness_gaps", "is_complete", "verdict"))],
        tests=["tests/test_audit_verdicts.py", "tests/test_audit_intervals.py",
               "tests/test_lira.py", "tests/test_audit.py", "tests/test_completeness.py"],
        k=NOT_SLOW + " and not cli_audit and not settle_washes"),
    "persistence": dict(
        mutate=["fastunlearn/persistence.py"],
        patterns=["fastunlearn.persistence.*"],
        tests=["tests/test_persistence.py", "tests/test_hostile_files.py",
               "tests/test_saved_measures.py", "tests/test_saved_files.py",
               "tests/test_drop_in.py::test_implicit_files_are_checked_like_fastunlearn_files",
               "tests/test_drop_in.py::test_fastunlearn_files_keep_their_guarantees_in_file_objects",
               "tests/test_implicit_compat.py::test_unfitted_model_saves_and_loads_as_implicits",
               "tests/test_implicit_compat.py::test_files_move_both_ways",
               "tests/test_interrupt.py::test_save_does_not_remove_a_temporary_another_save_is_writing"],
        k=NOT_SLOW),
}


def toml_list(values):
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def prepare(scope, fresh):
    work = ROOT / ".mutation" / scope
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("fastunlearn", "tests"):
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(ROOT / name, work / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cfg = SCOPES[scope]
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["fastunlearn"]\n'
        f"only_mutate = {toml_list(cfg['mutate'])}\n"
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-k", "{cfg["k"]}"]\n'
        f"pytest_add_cli_args_test_selection = {toml_list(cfg['tests'])}\n"
        'process_isolation = "forkserver"\n'
        "timeout_multiplier = 40.0\n")
    return work


def results(work):
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=work, check=True,
                         capture_output=True, text=True).stdout
    verdicts = Counter()
    for line in out.splitlines():
        if ": " in line:
            name, verdict = line.strip().rsplit(": ", 1)
            function = name.rsplit("__mutmut_", 1)[0]
            verdicts[function, verdict] += 1
    for (function, verdict), n in sorted(verdicts.items()):
        print(f"{n:4d} {function} {verdict}")
    for line in out.splitlines():
        if line.strip().endswith(": survived"):
            print("SURVIVED", line.strip().rsplit(": ", 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scope", choices=sorted(SCOPES))
    parser.add_argument("patterns", nargs="*",
                        help="mutmut's mutant name patterns (default: the whole scope)")
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--results", action="store_true")
    args = parser.parse_intermixed_args()
    if args.results:
        results(ROOT / ".mutation" / args.scope)
        return
    work = prepare(args.scope, args.fresh)
    env = {**os.environ, "FASTUNLEARN_MOVIELENS": os.environ.get(
        "FASTUNLEARN_MOVIELENS", str(MOVIELENS))}
    code = subprocess.call(["nice", "-n", "19", "mutmut", "run", "--max-children",
                            str(args.children), *(args.patterns or SCOPES[args.scope]["patterns"])],
                           cwd=work, env=env)
    results(work)
    sys.exit(code)


if __name__ == "__main__":
    main()
