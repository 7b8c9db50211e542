"""Re-test mutants that survived a mutmut run against the tests added since
(docs/mutation.md).

Each named mutant is switched on through mutmut's own trampoline (the
``MUTANT_UNDER_TEST`` variable) in the run's ``mutants/`` copy of the
package, with the current tests copied in, and the tests that check its
module run in this one process, stopping at the first failure.  Prints
``NAME killed`` or ``NAME survived`` (``NAME error CODE`` when pytest could
not run).  From the repository root, after ``mutmut run``::

    python tools/mutation_recheck.py NAME... | tee recheck.txt

or, after ``python tools/mutation_run.py SCOPE``, in that scope's copy::

    python tools/mutation_recheck.py --scope SCOPE NAME...

Set ``FASTUNLEARN_MOVIELENS`` when ``mutants/tests`` cannot find MovieLens.
"""
import os
import shutil
import sys
from fnmatch import fnmatch
from pathlib import Path

# the tests that check each module, fastest first; the command-line tests
# are left out (their subprocess cannot see the mutant's configuration)
TESTS = [
    ("fastunlearn.forgetting.reports.*", ["tests/test_receipts.py", "tests/test_settle.py"]),
    ("fastunlearn.forgetting.requests.x_settle*",
     ["tests/test_settle.py", "tests/test_completeness.py",
      "-k", "not default_forget and not sequential and not command_line"]),
    ("fastunlearn.storage.*", ["tests/test_storage.py"]),
    ("fastunlearn.audit.*", ["tests/test_audit_decisions.py", "tests/test_audit_verdicts.py",
                             "tests/test_audit_intervals.py", "tests/test_lira.py",
                             "-k", "not cli_audit"]),
    ("fastunlearn.state.*", ["tests/test_state.py"]),
    ("fastunlearn.forgetting.*", ["tests/test_rows_solved.py", "tests/test_refit_washout.py",
                                  "tests/test_kept_bounds.py", "tests/test_engine_phases.py",
                                  "tests/test_engine_requests.py",
                                  "tests/test_forget_requests.py",
                                  "tests/test_partial_fit_rows.py"]),
    ("fastunlearn.persistence.*", ["tests/test_loaded_checks.py", "tests/test_saved_measures.py",
                                   "tests/test_saved_files.py"]),
]


def main(names):
    import pytest

    root = Path(__file__).resolve().parents[1]
    run = root
    if names[:1] == ["--scope"]:  # a run of tools/mutation_run.py
        run, names = root / ".mutation" / names[1], names[2:]
    shutil.rmtree(run / "mutants" / "tests", ignore_errors=True)
    shutil.copytree(root / "tests", run / "mutants" / "tests")
    os.chdir(run / "mutants")
    sys.path.insert(0, str(run / "mutants"))
    for name in names:
        args = next((tests for pattern, tests in TESTS if fnmatch(name, pattern)), None)
        if args is None:
            print(f"{name}: no tests listed for it in {__file__}", file=sys.stderr)
            continue
        os.environ["MUTANT_UNDER_TEST"] = name
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *args])
        verdict = {0: "survived", 1: "killed"}.get(int(code), f"error {int(code)}")
        print(f"RESULT {name} {verdict}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
