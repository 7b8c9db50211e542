"""The default forget under the likelihood-ratio attacker at implicit
settings other than the two the audit tunes and checks (factors 32, alpha
5 and factors 64, alpha 1): does the washout's schedule carry over?

Random 1 % and 5 % sets (four each) of MovieLens 100K at factors 64,
alpha 5 and factors 32, alpha 1; the default forget against longer
prototype washouts (``N@w``: N over-relaxed sweeps at relaxation w), all
against three retrain seeds, as bench/audit_lira.py measures them.

``python bench/settings_lira.py`` writes results/settings-lira.{json,md}
(41 s on 2 idle cores); ``--redraw`` rewrites the Markdown from the
JSON.
"""
import argparse
import json
import time

from audit_lira import HEADER, IMPLICIT, _plain, case, rows_of, summary
from common import commit, machine, movielens, results_dir, table

SETTINGS = [{**IMPLICIT, "factors": 64, "alpha": 5.0},
            {**IMPLICIT, "factors": 32, "alpha": 1.0}]
SETS = [("random", 0.01, (0, 1, 2, 3)), ("random", 0.05, (0, 1, 2, 3))]
WASHOUTS = ("auto", "6@1.9", "12@1.9")
REPEATS = 3
SHADOWS = 16
COMMAND = "python bench/settings_lira.py"

NOTES = """
* Measured as the audit's likelihood-ratio section (bench/results/audit.md,
  "Likelihood-ratio attacker"): {shadows} shadows, {repeats} retrain seeds,
  the same columns and the same criterion (max(0.01, spread of the retrain
  seeds)).  The washout's constants (`forgetting.options`) were chosen at
  factors 32, alpha 5 and factors 64, alpha 1; these settings were not
  used to choose them.
* Washout `N@w`: a prototype of N over-relaxed sweeps at relaxation w, not
  what the engine does; the default ("auto") runs two sweeps at 1.8 at 1 %
  and three at 1.9 at 5 %.  Twelve relaxed sweeps and their plain sweep
  cost about a fit of 15 iterations; a refit (`washout="refit"`) costs one
  fit and equals the seed-0 retrain.
* Command: `{command}`.
"""


def run():
    R = movielens()
    if R is None:
        raise SystemExit("MovieLens 100K not found (bench/common.py: movielens)")
    results = []
    for params in SETTINGS:
        for how, fraction, seeds in SETS:
            for seed in seeds:
                result = case("implicit", R, params, how, fraction, seed, REPEATS, SHADOWS,
                              WASHOUTS)
                results.append({"data": "movielens-100k", **result})
                print(f"factors {params['factors']}, alpha {params['alpha']:g}, {how} "
                      f"{fraction:.0%} seed {seed} done", flush=True)
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "commit": commit(), "command": COMMAND, "params": {"settings": SETTINGS},
               "washouts": list(WASHOUTS), "shadows": SHADOWS, "repeats": REPEATS,
               "results": results}
    (results_dir() / "settings-lira.json").write_text(
        json.dumps(payload, indent=2, default=_plain))
    return payload


def write_markdown(payload):
    results = payload["results"]
    rows = [row for r in results for row in rows_of(r["data"], r)]
    text = ("# The likelihood-ratio attacker at other settings\n\n"
            f"{payload['date']}, commit {payload['commit']}, "
            f"{payload['machine']['processor']}, {payload['machine']['cpus']} CPUs.\n\n"
            + table(HEADER, rows) + "\n" + summary(results) + "\n\n"
            + NOTES.format(shadows=payload["shadows"], repeats=payload["repeats"],
                           command=payload["command"]).strip() + "\n")
    (results_dir() / "settings-lira.md").write_text(text)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redraw", action="store_true",
                        help="rewrite settings-lira.md from settings-lira.json")
    args = parser.parse_args()
    if args.redraw:
        payload = json.loads((results_dir() / "settings-lira.json").read_text())
    else:
        payload = run()
    write_markdown(payload)


if __name__ == "__main__":
    main()
