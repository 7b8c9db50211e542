"""PNG plots of the audit and scaling results (matplotlib is an optional extra).

Every function takes the payload a benchmark wrote (the JSON), so plots can be
redrawn from saved results with ``python bench/run.py plots``.
"""
import json

from common import results_dir


def _pyplot():
    """matplotlib.pyplot with a file-only backend, or None (with a message)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): skipping the plots")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, name):
    path = results_dir() / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def audit_curves(payload, name="audit"):
    """Certificate, nDCG@10 and MIA AUC against wall time: retrain (per
    iteration) versus forget (masked at several tolerances, plain full
    sweeps after the removal, and washouts)."""
    plt = _pyplot()
    curves = payload.get("curves")
    if plt is None or not curves:
        return None
    panels = (("certificate", "certificate max_row (log)", True),
              ("ndcg", "nDCG@10 (test)", False),
              ("rank_auc", "MIA AUC, rank attacker", False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = {"retrain": dict(marker=".", color="tab:blue"),
              "forget (masked, tolerance sweep)": dict(marker="o", color="tab:red"),
              "forget (full sweeps)": dict(marker="s", color="tab:orange"),
              "forget (washout)": dict(marker="^", color="tab:green")}
    for label, points in curves["series"].items():
        seconds = [p["seconds"] for p in points]
        for ax, (key, title, log) in zip(axes, panels):
            ax.plot(seconds, [p[key] for p in points], label=label, **styles.get(label, {}))
            ax.set_title(title)
            ax.set_xlabel("wall time (s)")
            if log:
                ax.set_yscale("log")
    mark = curves.get("retrain_iterations")
    if mark:
        point = curves["series"]["retrain"][mark - 1]
        for ax, (key, _, _) in zip(axes, panels):
            ax.axvline(point["seconds"], color="tab:blue", ls=":", lw=1)
            ax.annotate(f"{mark} it.", (point["seconds"], point[key]), fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{curves['data']}: forget {curves['how']} {curves['fraction']:.0%} "
                 "vs retrain (wall time excludes the measuring)")
    return _save(plt, fig, f"{name}-curves")


def scaling(payload, name="scaling"):
    """Time against stored entries and against factors (log-log)."""
    plt = _pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import NullFormatter

    keys = (("fit_per_iteration", "fit, per iteration"),
            ("forget_user", "forget one median user"),
            ("forget_1pct", "forget 1% of entries"))
    paths = []
    for part, xkey, xlabel in (("nnz", "nnz", "stored entries"),
                               ("factors", "factors", "factors")):
        rows = payload.get(part) or []
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(6, 4.2))
        x = [r[xkey] for r in rows]
        for key, label in keys:
            ax.plot(x, [r[key]["seconds"] for r in rows], marker="o", label=label)
        ax.set_xscale("log", base=2 if part == "factors" else 10)
        ax.set_yscale("log")
        # label the measured points, not the decades
        ax.set_xticks(x, [f"{v / 1e6:g}M" if part == "nnz" else str(v) for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds (median)")
        fixed = (f"factors={rows[0]['factors']}" if part == "nnz"
                 else f"{rows[0]['nnz']:,} entries")
        ax.set_title(f"time vs {xlabel} ({fixed}, {payload['threads']} threads)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(plt, fig, f"{name}-{part}"))
    return paths


def redraw():
    """Redraw every plot from the JSON results present in the results folder."""
    for name, draw in (("audit", audit_curves), ("scaling", scaling)):
        path = results_dir() / f"{name}.json"
        if path.exists():
            draw(json.loads(path.read_text()), name)
        else:
            print(f"no {path}: run 'python bench/run.py {name}' first")
