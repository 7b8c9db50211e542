"""Command-line interface: ``fastunlearn demo|fit|forget|recommend|similar|audit|info``.

Exit status: 0 on success, 2 for usage errors and bad input (files that
cannot be read, unknown ids), 1 for any other failure.  Errors are reported
as one line on stderr, ``fastunlearn: error: ...``, never as a traceback.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

from .persistence import model_path, saved_path

PROG = "fastunlearn"


class CLIError(Exception):
    """A failure reported as one line; ``status`` is the exit status."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, no usage dump
        raise CLIError(f"{message} (see '{self.prog} --help')", 2)


# ---------------------------------------------------------------- helpers

def _jsonable(obj):
    """Recursively turn numpy scalars/arrays and dataclasses into JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return _jsonable(asdict(obj))
    if isinstance(obj, type):
        return obj.__name__
    if isinstance(obj, np.dtype):
        return obj.name
    return obj


def _progress(args):
    return (not getattr(args, "quiet", False) and not getattr(args, "no_progress", False)
            and sys.stderr.isatty())


def _load(path):
    from .models import load
    from .persistence import ModelFileError

    try:
        model = load(path)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such model file") from None
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None
    if not model.is_fitted:  # implicit's files hold no interactions (nor id maps)
        raise CLIError(f"{path}: a model without its interactions (saved by implicit?); "
                       "take it over in Python with ImplicitALS.from_implicit(path, "
                       "user_items) and save that")
    return model


def _columns(args):
    """The --user-col style options as read_interactions keywords: a header
    name, a 1-based column number, or "none" (value and timestamp)."""
    out = {}
    for role in ("user", "item", "value", "timestamp"):
        given = getattr(args, f"{role}_col", None)
        if given is None:
            continue
        if given.strip().lower() == "none" and role in ("value", "timestamp"):
            out[role] = False
        elif given.strip().isdigit():
            if int(given) < 1:
                raise CLIError(f"--{role}-col: column numbers start at 1, got {given}")
            out[role] = int(given) - 1
        else:
            out[role] = given
    return out


def _read(path, fmt="auto", args=None):
    import warnings

    from .data import DataFormatError, DataWarning, read_interactions

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            data = read_interactions(path, fmt=fmt, **(_columns(args) if args else {}))
        for w in caught:  # said once, as one line, like errors
            if issubclass(w.category, DataWarning):
                print(f"{PROG}: warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return data
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory") from None
    except DataFormatError as exc:
        raise CLIError(str(exc)) from None


def _id_maps(model):
    n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
    users = model.metadata.get("user_ids")
    items = model.metadata.get("item_ids")
    users = np.arange(n_users, dtype=np.int64) if users is None else np.asarray(users)
    items = np.arange(n_items, dtype=np.int64) if items is None else np.asarray(items)
    return users, items


def _receipt_words(model, receipt):
    """'receipt N of TIME' for a tombstone's receipt number."""
    history = model.metadata.get("history", [])
    if not receipt:
        return "no receipt: nothing of theirs was stored"
    when = history[receipt - 1].get("time") if receipt <= len(history) else None
    return f"receipt {receipt}" + (f", {when}" if when else "")


def _resolve(ids, id_array, what, model, missing="raise", hint=True):
    """Row numbers of external ``ids`` and what was skipped: ids forgotten
    earlier (their tombstones) and ids never known.  Unless ``missing`` is
    "ignore", either kind is an error that says which it is."""
    from . import tombstones

    ids = [ids] if isinstance(ids, (str, int, np.integer)) else list(ids)
    found = _lookup(ids, id_array)
    absent = [q for q, r in zip(ids, found) if r < 0]
    gone = tombstones.forgotten(absent, id_array)
    unknown = [q for q in absent if q not in gone]
    if absent and missing != "ignore":
        if gone:
            shown = "; ".join(f"'{q}' ({_receipt_words(model, r)})"
                              for q, r in list(gone.items())[:5])
            more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
            raise CLIError(f"{what} ids already forgotten: {shown}{more}"
                           + (f"; also {len(unknown)} unknown" if unknown else "")
                           + ("; pass --missing ignore to make a repeated request a no-op"
                              if hint else ""))
        _internal(unknown, id_array, what)  # raises, naming them
    skipped = {f"forgotten_{what}s": [str(q) for q in gone],
               f"unknown_{what}s": [str(q) for q in unknown]}
    return found, skipped


def _resolve_in_file(args, ids, id_array, what, model):
    """:func:`_resolve` of the ids of the ``--pairs`` file: an error names
    the file and the first line holding a forgotten or unknown id."""
    try:
        return _resolve(ids, id_array, what, model, args.missing)
    except CLIError as exc:
        from .readers.where import first_lines

        absent = [q for q, r in zip(ids, _lookup(ids, id_array)) if r < 0]
        lines = first_lines(args.pairs, _format_of(args), what, absent,
                            columns=_reader_columns(args), auto=args.format == "auto")
        where = f", line {min(lines.values())}" if lines else ""
        raise CLIError(f"{args.pairs}{where}: {exc}", exc.status) from None


def _format_of(args):
    """The format the ``--pairs`` file was read in."""
    from .readers.layout import guess_format

    return args.format if args.format != "auto" else guess_format(args.pairs)


def _reader_columns(args):
    from .readers.layout import check_columns

    given = _columns(args)
    return check_columns(**{role: given.get(role) for role in
                            ("user", "item", "value", "timestamp")})


def _pair_list(pairs, rows, cols):
    """[[user, item], ...] (external ids, strings) of rows/columns of the
    ``--pairs`` file's matrix (to find their lines; never printed)."""
    return [[str(pairs.user_ids[r]), str(pairs.item_ids[c])] for r, c in zip(rows, cols)]


def _internal(ids, id_array, what):
    from .data import UnknownIdError, to_internal

    try:
        return to_internal(ids, id_array)
    except UnknownIdError as exc:
        raise CLIError(str(exc).replace(" unknown ", f" unknown {what} ", 1)) from None


def _cert_dict(cert):
    return {"max_row": float(cert.max_row), "frobenius": float(cert.frobenius)}


def _print_kv(rows):
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        print(f"{key + ':':<{width + 1}} {value}")


def _count(n, one, many=None):
    """'1 request', '2 requests' (``many`` for irregular plurals)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _fmt(x, spec=".4g"):
    return "n/a" if x is None else format(x, spec)


# ---------------------------------------------------------------- fit

def cmd_fit(args):
    from . import ExplicitALS, ImplicitALS
    from .persistence import save

    data = _read(args.data, args.format, args)
    params = dict(factors=args.factors, iterations=args.iterations,
                  num_threads=args.threads, random_state=args.seed,
                  use_cg=(args.solver == "cg"))
    if args.explicit:
        params["regularization"] = 0.1 if args.regularization is None else args.regularization
        if args.alpha is not None:
            raise CLIError("--alpha applies to implicit models only")
        cls = ExplicitALS
    else:
        params["regularization"] = 0.01 if args.regularization is None else args.regularization
        params["alpha"] = 1.0 if args.alpha is None else args.alpha
        cls = ImplicitALS
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"invalid hyperparameters: {exc}") from None
    start = time.perf_counter()
    model.fit(data.matrix, show_progress=_progress(args))
    seconds = time.perf_counter() - start
    model.metadata = {"user_ids": data.user_ids, "item_ids": data.item_ids, "history": []}
    written = save(model, args.output, metadata=model.metadata)
    if not args.quiet:
        cert = model.certificate()
        _print_kv([
            ("model", f"{cls.__name__} -> {written}"),
            ("data", f"{data.n_users} users x {data.n_items} items, "
                     f"{data.matrix.nnz} interactions"),
            ("fit time", f"{seconds:.2f} s"),
            ("certificate", f"max_row={cert.max_row:.3e} frobenius={cert.frobenius:.3e}"),
        ])
    return 0


# ---------------------------------------------------------------- forget

def _washout_line(washout, refit, settled):
    if washout:
        return "in this request" + (" (a refit from the model's seed)" if refit else "")
    if settled is None:
        return "none needed"
    return (f"deferred, then run before saving ({settled.rows_solved} rows, certificate "
            f"{settled.certificate_after.max_row:.3e})")


def _washout(text):
    if text in ("auto", "refit"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'refit' or an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'refit' or an integer >= 0, got {value}")
    return value


def _skipped_lines(skipped):
    """Report lines for what --missing ignore skipped, counted and listed."""
    lines = []
    for key, value in skipped.items():
        label = "skipped, " + key.replace("_", " ")
        if isinstance(value, list):
            shown = ", ".join(repr(v) for v in value[:10])
            lines.append((label, f"{len(value)}: {shown}" + (" ..." if len(value) > 10 else "")))
        else:
            lines.append((label, value))
    return lines


def cmd_forget(args):
    from .persistence import save

    source = model_path(args.model)
    if source is None:
        raise CLIError(f"{args.model}: no such model file")
    if args.in_place:
        if args.output is not None and \
                os.path.abspath(saved_path(args.output)) != os.path.abspath(source):
            raise CLIError("--in-place writes MODEL itself; do not combine it with a different -o")
        target = source
    else:
        if args.output is None:
            raise CLIError("give -o OUT for the new model, or --in-place to overwrite MODEL")
        target = saved_path(args.output)
        if os.path.abspath(target) == os.path.abspath(source):
            raise CLIError(f"refusing to overwrite {source}; pass --in-place to do so")

    model = _load(source)
    user_ids, item_ids = _id_maps(model)
    options = dict(tolerance=args.tolerance, washout=args.washout,
                   exact_certificate=args.exact_certificate, show_progress=_progress(args))
    try:
        if args.users is not None:
            rows, skipped = _resolve(args.users, user_ids, "user", model, args.missing)
            rows = np.unique(rows[rows >= 0])
            report = model.forget_users(rows, **options)
            if model.metadata.get("user_ids") is not None and len(rows):
                from .tombstones import tombstoned

                receipt = len(model.metadata.get("history", [])) if report.n_removed else 0
                model.metadata["user_ids"] = tombstoned(user_ids, rows, receipt)
        elif args.items is not None:
            cols, skipped = _resolve(args.items, item_ids, "item", model, args.missing)
            cols = np.unique(cols[cols >= 0])
            report = model.forget_items(cols, **options)
            if model.metadata.get("item_ids") is not None and len(cols):
                from .tombstones import tombstoned

                receipt = len(model.metadata.get("history", [])) if report.n_removed else 0
                model.metadata["item_ids"] = tombstoned(item_ids, cols, receipt)
        else:
            pairs = _read(args.pairs, args.format, args)
            coo = pairs.matrix.tocoo()
            # ids forgotten or unknown: their pairs are skipped (or the error,
            # naming the file and line)
            user_rows, skipped = _resolve_in_file(args, pairs.user_ids.tolist(), user_ids,
                                                  "user", model)
            item_cols, more = _resolve_in_file(args, pairs.item_ids.tolist(), item_ids,
                                               "item", model)
            skipped.update(more)
            rows, cols = user_rows[coo.row], item_cols[coo.col]
            keep = (rows >= 0) & (cols >= 0)
            # pairs are counted, never listed: a retried request's pairs are
            # the erased interactions, which must not reach logs again
            skipped["pairs_with_unknown_or_forgotten_ids"] = int((~keep).sum())
            stored = np.zeros(len(keep), dtype=bool)
            if keep.any():
                from .pairs import is_stored, pair_keys

                n_items = model.item_factors.shape[0]
                stored[keep] = is_stored(pair_keys(model.user_items),
                                         rows[keep].astype(np.int64) * n_items + cols[keep])
            if args.missing != "ignore" and not stored[keep].all():
                from .readers.where import pair_lines

                first = np.flatnonzero(keep & ~stored)
                bad = _pair_list(pairs, coo.row[first], coo.col[first])
                lines = pair_lines(args.pairs, _format_of(args), bad,
                                   columns=_reader_columns(args), auto=args.format == "auto")
                where = f", line {min(lines.values())}" if lines else ""
                # the line, not the pair: it may be one forgotten before
                raise CLIError(f"{args.pairs}{where}: {_count(len(first), 'pair')} of "
                               f"{int(keep.sum())} not stored in the model (forgotten "
                               "before, or never there); pass --missing ignore to skip them")
            skipped["pairs_not_stored"] = int((keep & ~stored).sum())
            rows, cols = rows[keep & stored], cols[keep & stored]
            report = model.forget(rows, cols, missing=args.missing, **options)
    except CLIError:
        raise
    except ValueError as exc:  # e.g. pairs that are not stored in the model
        raise CLIError(str(exc).splitlines()[0]) from None
    # a saved model carries no pending washout: what this process leaves is
    # complete, whatever later requests do
    settled = None if report.settled else model.settle(
        tolerance=args.tolerance, exact_certificate=args.exact_certificate,
        show_progress=_progress(args))
    model.metadata["history"] = _jsonable(model.metadata.get("history", []))
    if report.n_removed == 0 and target == source:
        written = source  # a repeated request: the file is left as it was
    else:
        written = save(model, target, metadata=model.metadata)

    result = _jsonable(report.to_dict())
    result["settle"] = None if settled is None else _jsonable(settled.to_dict())
    # the top level describes the saved file: settled before it was written
    result["settled"] = bool(model.pending["entries"] == 0)
    result["pending_entries"] = int(model.pending["entries"])
    result["skipped"] = {k: v for k, v in skipped.items() if v}
    if args.json:
        result["output"] = written
        print(json.dumps(result, indent=2))
    elif not args.quiet:
        if report.n_removed == 0:
            print("nothing to forget: every id or pair asked for is already gone")
        _print_kv([
            ("removed", result["n_removed"]),
            *_skipped_lines(result["skipped"]),
            ("users affected", result["users_affected"]),
            ("items affected", result["items_affected"]),
            ("rows solved", f"{result['rows_solved']} "
                            f"(local {result['rows_solved_by_phase']['local']}, "
                            f"washout {result['rows_solved_by_phase']['washout']}, "
                            f"sweeps {result['rows_solved_by_phase']['sweeps']})"),
            ("sweeps", result["sweeps"]),
            ("seconds", f"{result['seconds']:.4f}"),
            ("loss before", f"{result['loss_before']:.6g}"),
            ("loss after", f"{result['loss_after']:.6g}"),
            ("certificate before", f"{result['certificate_before']['max_row']:.3e}"),
            ("certificate after", f"{result['certificate_after']['max_row']:.3e}"
                                  + ("" if result["certificate_after"]["exact"]
                                     else " (upper bound)")),
            ("tolerance", f"{result['tolerance']:.3e}"),
            ("converged", "yes" if result["converged"] else "no"),
            ("washout", _washout_line(result["washout"], result["refit"], settled)),
            *([("digest", result["digest"]),
               ("receipt key", result["receipt_key"] + "  (give it to the requester; "
                                                       "it is not saved)")]
              if report.n_removed else [("receipt", "none: nothing was removed")]),
            ("output", written),
        ])
    return 0


# ---------------------------------------------------------------- serving

def cmd_recommend(args):
    from .data import to_external

    model = _load(args.model)
    user_ids, item_ids = _id_maps(model)
    row = int(_resolve(args.user, user_ids, "user", model, hint=False)[0][0])
    if args.n < 0:
        raise CLIError(f"-n must be >= 0 (0: an empty list, as N=0 in the API), got {args.n}")
    ids, scores = model.recommend(row, model.user_items[row], N=args.n,
                                  filter_items=_forgotten_rows(item_ids))
    keep = ids >= 0
    ids, scores = ids[keep], scores[keep]
    items = to_external(ids, item_ids).tolist() if len(ids) else []
    _print_ranked(args, {"user": args.user}, items, scores)
    return 0


def cmd_similar(args):
    from .data import to_external

    model = _load(args.model)
    user_ids, item_ids = _id_maps(model)
    col = int(_resolve(args.item, item_ids, "item", model, hint=False)[0][0])
    if args.n < 0:
        raise CLIError(f"-n must be >= 0 (0: an empty list, as N=0 in the API), got {args.n}")
    ids, scores = model.similar_items(col, N=args.n + 1, filter_items=_forgotten_rows(item_ids))
    keep = (ids >= 0) & (ids != col)
    ids, scores = ids[keep][:args.n], scores[keep][:args.n]
    items = to_external(ids, item_ids).tolist() if len(ids) else []
    _print_ranked(args, {"item": args.item}, items, scores)
    return 0


def _forgotten_rows(id_array):
    """Rows of the id map holding tombstones (forgotten items are never
    served), or None."""
    from .tombstones import PREFIX

    id_array = np.asarray(id_array)
    if id_array.dtype.kind != "U":
        return None
    rows = np.flatnonzero(np.char.startswith(id_array, PREFIX))
    return rows if len(rows) else None


def _print_ranked(args, head, items, scores):
    """The ranked list: JSON (ids as strings, users and items alike, as in
    the files and on the command line) or columns under a header."""
    if args.json:
        print(json.dumps({**{k: str(v) for k, v in head.items()}, "results": [
            {"item": str(i), "score": float(s)} for i, s in zip(items, scores)]}, indent=2))
        return
    width = max((len(str(i)) for i in items), default=4)
    print(f"{'rank':>4}  {'item':<{width}}  score")
    for rank, (item, score) in enumerate(zip(items, scores), 1):
        print(f"{rank:>4}  {str(item):<{width}}  {score:.6f}")


def cmd_info(args):
    from .forgetting import washout_for

    model = _load(args.model)
    params = model.hyperparameters()
    params["dtype"] = np.dtype(params["dtype"]).name
    cert = model.certificate()
    history = model.metadata.get("history", [])
    info = {
        "file": model_path(args.model),
        "kind": model.kind,
        "users": int(model.user_factors.shape[0]),
        "items": int(model.item_factors.shape[0]),
        "interactions": int(model.user_items.nnz),
        "factors": int(model.factors),
        "hyperparameters": params,
        "certificate": _cert_dict(cert),
        "loss": float(model.loss()),
        "external_ids": "user_ids" in model.metadata,
        "pending": model.pending,
        # relaxed washouts since the fit, and whether the next washout refits
        # (washout_for decides; a refit does not depend on the pending count)
        "washouts": {"relaxed_since_fit": int(model.state.washouts),
                     "policy": model.washout_policy,
                     "next_refits": bool(washout_for(model.spec.objective, 1,
                                                     model.user_items.nnz,
                                                     model.state.washouts,
                                                     model.washout_policy).refit)},
        "history": [
            {k: r.get(k) for k in ("event", "digest", "n_removed", "users_affected",
                                   "items_affected", "entries", "requests", "certificate_after",
                                   "tolerance", "converged", "settled", "time")}
            for r in history
        ],
    }
    info = _jsonable(info)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    hp = ", ".join(f"{k}={v}" for k, v in info["hyperparameters"].items())
    _print_kv([
        ("file", info["file"]),
        ("kind", info["kind"]),
        ("users", info["users"]),
        ("items", info["items"]),
        ("interactions", info["interactions"]),
        ("factors", info["factors"]),
        ("hyperparameters", hp),
        ("certificate", f"max_row={info['certificate']['max_row']:.3e} "
                        f"frobenius={info['certificate']['frobenius']:.3e}"),
        ("loss", f"{info['loss']:.6g}"),
        ("pending washout", f"{_count(info['pending']['entries'], 'entry', 'entries')} of "
                            f"{_count(info['pending']['requests'], 'request')}"),
        ("washouts since the fit",
         f"{info['washouts']['relaxed_since_fit']} relaxed; the next "
         f"{'refits' if info['washouts']['next_refits'] else 'is relaxed'} "
         f"(policy {info['washouts']['policy']})"),
        ("forget receipts", len(info["history"])),
    ])
    for n, r in enumerate(info["history"], 1):
        if r.get("event") == "settle":
            print(f"  {n:>3}. {r.get('time')}  washout of "
                  f"{_count(r.get('entries'), 'pending entry', 'pending entries')} "
                  f"({_count(r.get('requests'), 'request')})  "
                  f"converged={'yes' if r.get('converged') else 'no'}")
            continue
        washed = "" if r.get("settled") in (None, True) else "  (washout pending)"
        print(f"  {n:>3}. {r.get('time')}  removed={r.get('n_removed')} "
              f"users={r.get('users_affected')} items={r.get('items_affected')} "
              f"converged={'yes' if r.get('converged') else 'no'}  {r.get('digest')}{washed}")
    return 0


# ---------------------------------------------------------------- audit

def _lookup(ids, id_array):
    """Row numbers of external ``ids`` in ``id_array``, -1 where unknown."""
    from .data import lookup_ids

    return lookup_ids(list(ids), id_array)


def cmd_audit(args):
    import scipy.sparse as sp

    from .audit import model_report

    if args.k < 1:
        raise CLIError("--k must be at least 1")
    if args.shadows and args.forgotten is None:
        raise CLIError("--shadows needs --forgotten (the attack tells the forgotten pairs "
                       "from held-out ones)")
    if args.shadows and (args.shadows < 4 or args.shadows % 2):
        raise CLIError(f"--shadows must be 0 or an even number >= 4, got {args.shadows}")
    model = _load(args.model)
    data = _read(args.test, args.format, args)
    user_ids, item_ids = _id_maps(model)
    rows = _lookup(data.user_ids, user_ids)
    cols = _lookup(data.item_ids, item_ids)
    coo = data.matrix.tocoo()
    r, c = rows[coo.row], cols[coo.col]
    keep = (r >= 0) & (c >= 0)
    if not keep.any():
        raise CLIError(f"{args.test}: none of its {coo.nnz} interactions has a user and an "
                       "item known to the model")
    shape = (model.user_factors.shape[0], model.item_factors.shape[0])
    test = sp.csr_matrix((coo.data[keep], (r[keep], c[keep])), shape=shape)
    counts = {"interactions": int(coo.nnz), "used": int(keep.sum()),
              "skipped": int((~keep).sum()), "unknown_users": int((rows < 0).sum()),
              "unknown_items": int((cols < 0).sum())}
    forgotten, unknown_pairs = None, 0
    if args.forgotten is not None:
        pairs = _read(args.forgotten, args.format, args)
        coo_f = pairs.matrix.tocoo()
        fr = _lookup(pairs.user_ids, user_ids)[coo_f.row]
        fc = _lookup(pairs.item_ids, item_ids)[coo_f.col]
        known = (fr >= 0) & (fc >= 0)
        if not known.any():
            raise CLIError(f"{args.forgotten}: none of its pairs has a user and an item "
                           "known to the model")
        forgotten, unknown_pairs = (fr[known], fc[known]), int((~known).sum())
        if args.shadows:  # as a matrix: its values (weights, ratings) train the shadows
            forgotten = sp.csr_matrix((coo_f.data[known], forgotten), shape=shape)
    try:
        found = model_report(model, test, k=args.k, forgotten=forgotten,
                             shadows=args.shadows, show_progress=_progress(args)).to_dict()
    except ValueError as exc:
        raise CLIError(f"{args.forgotten or args.test}: {exc}") from None
    complete = found["completeness"]
    if complete is not None:
        from .audit.intervals import reading

        complete["pairs_unknown"] = unknown_pairs
        complete["readings"] = {key: reading(*gap) for key, gap in complete["gaps"].items()}
    counts["users_evaluated"] = found["users_evaluated"]
    if found["in_training_data"] is not None:
        counts["in_training_data"] = found["in_training_data"]
    k, metrics = args.k, found["metrics"]
    result = _jsonable({"model": model_path(args.model), "test": args.test,
                        "kind": found["kind"], "k": k, **counts, "metrics": metrics,
                        "fairness": found["fairness"], "completeness": complete})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows_out = [("test interactions", f"{counts['used']} used of {counts['interactions']} "
                                      f"({counts['skipped']} skipped: "
                                      f"{counts['unknown_users']} unknown users, "
                                      f"{counts['unknown_items']} unknown items)")]
    if "in_training_data" in counts:
        rows_out.append(("already in training data", f"{counts['in_training_data']} "
                                                     "(not counted as relevant)"))
    rows_out.append(("users evaluated", counts["users_evaluated"]))
    at_k = ("precision", "recall", "ndcg", "hit_rate")
    rows_out += [(f"{name}@{k}" if name in at_k else name, _fmt(value, ".4f"))
                 for name, value in metrics.items()]
    f = result["fairness"]
    label = f"{f['metric']}@{k}" if f["metric"] == "ndcg" else f["metric"]
    rows_out.append((f"fairness gap ({label})",
                     f"{_fmt(f['gap'], '+.4f')} = top 20% most active users "
                     f"{_fmt(f['active'], '.4f')} ({f['n_active']}) - rest "
                     f"{_fmt(f['inactive'], '.4f')} ({f['n_inactive']})"))
    if complete is not None:
        rows_out.append(("completeness pairs",
                         f"{complete['forget']['n_forgotten']} forgotten vs "
                         f"{complete['forget']['n_unseen']} held-out"))
        for attacker, label in _ATTACKER_LABELS:
            if attacker not in complete["gaps"]:
                continue
            seeds = [r[attacker] for r in complete["retrains"]]
            gap_value, allowed = complete["gaps"][attacker]
            ci = (complete["intervals"] or {}).get(attacker)
            ci = (f" [95% {ci['forget'][0]:.4f}..{ci['forget'][1]:.4f}]"
                  if ci and ci["forget"][0] is not None else "")
            rows_out.append((f"completeness, {label} attacker",
                             f"AUC {complete['forget'][attacker]:.4f}{ci} vs retrains "
                             f"{min(seeds):.4f}..{max(seeds):.4f} (gap {gap_value:+.4f}, "
                             f"allowed {allowed:.4f}): {complete['readings'][attacker]}"))
        verdict = complete["verdict"]
        rows_out.append(("complete", {"complete": "yes", "incomplete": "NO"}.get(
            verdict, complete["verdict_text"])))
        if verdict == "too few pairs to judge":
            rows_out.append(("hint", "forget more pairs at once, or audit a larger set of "
                                     "forgotten pairs, for a verdict"))
    _print_kv(rows_out)
    return 0


# (key in the completeness measures, what the tables call the attacker)
_ATTACKER_LABELS = (("score_auc", "score"), ("rank_auc", "rank"),
                    ("lira_auc", "likelihood-ratio"),
                    ("lira_offline_auc", "likelihood-ratio offline"))

# ---------------------------------------------------------------- demo

def cmd_demo(args):
    from . import audit
    from .synthetic import make_implicit

    if args.movielens:
        data = _read(args.movielens, "auto" if not os.path.basename(args.movielens) == "u.data"
                     else "movielens")
        matrix, source = data.matrix, f"MovieLens ({args.movielens})"
    else:
        for name in ("users", "items", "nnz"):
            if getattr(args, name) < 1:
                raise CLIError(f"--{name} must be at least 1")
        matrix = make_implicit(args.users, args.items, args.nnz, seed=args.seed)
        source = f"synthetic (seed {args.seed})"
    if args.shadows and (args.shadows < 4 or args.shadows % 2):
        raise CLIError(f"--shadows must be 0 or an even number >= 4, got {args.shadows}")
    params = dict(factors=32, iterations=15, regularization=0.05, alpha=1.0)
    # what a Python user would call: the default forget and one without a
    # washout, against three retrains
    default, plain = audit.reports(matrix, fraction=0.01, how="random", seed=args.seed,
                                   repeats=3, washouts=("auto", 0), shadows=args.shadows,
                                   **params)
    if args.quiet:
        return 0
    s = default.setting
    print("fastunlearn demo: forget 1% of the training interactions, compare with retraining\n")
    print(f"data      {source}: {s['n_users']} users x {s['n_items']} items, "
          f"{s['nnz'] + s['n_test']} interactions (per-user 80/20 split: train {s['nnz']}, "
          f"test {s['n_test']})")
    print("model     ImplicitALS factors=32 iterations=15 regularization=0.05")
    print(f"request   forget {s['n_removed']} random training interactions of "
          f"{s['users_affected']} users\n")
    e, e0 = default.efficiency, plain.efficiency
    print("cost (median of 3 runs each)")
    print(f"  retrain from scratch       {e['retrain_seconds']:8.3f} s")
    print(f"  forget (default)           {e['forget_seconds']:8.3f} s   "
          f"{e['ratio']:.3f} of a retrain")
    print(f"  forget, washout=0          {e0['forget_seconds']:8.3f} s   "
          f"{e0['ratio']:.3f} of a retrain\n")
    print("completeness: can an attacker tell the forgotten pairs from held-out test pairs "
          "of the same users?")
    print(f"  AUC, {default.completeness['forget']['n_unseen']} held-out pairs; a complete "
          "forget is as close to the seed-0 retrain as retrains with other seeds are")
    if args.shadows:
        print(f"  likelihood ratio: per-pair attacker calibrated on {args.shadows} shadow models "
              f"({args.shadows} more fits, {e['shadow_seconds']:.1f} s); online, and offline "
              "(OUT shadows only)")
    attackers = [(key, label) for key, label in _ATTACKER_LABELS
                 if key in default.retrain_spread]
    names = {"likelihood-ratio": "likelihood ratio", "likelihood-ratio offline": "offline"}
    print(f"  {'':<22}" + "".join(f" {names.get(label, label):>16}" for _, label in attackers))
    rows = [("original model", default.completeness["original"]),
            ("forget (default)", default.completeness["forget"]),
            ("forget, washout=0", plain.completeness["forget"]),
            ("retrain, seed 0", default.completeness["retrain"])]
    for label, mia in rows:
        print(f"  {label:<22}" + "".join(f" {mia[key]:>16.4f}" for key, _ in attackers))
    spread = default.retrain_spread
    print(f"  {'retrains, seeds 0-2':<22}" + "".join(
        f" {min(spread[key]):>7.4f}..{max(spread[key]):.4f}" for key, _ in attackers))
    for label, report in (("forget (default)", default), ("forget, washout=0", plain)):
        gaps = report.completeness_gaps()
        worst = max(abs(g) / a for g, a in gaps.values())
        print(f"  {label:<22} {_demo_verdict(report)} "
              f"(largest gap {worst:.2f} of what retrains and sampling allow)")
    print()
    u = default.utility
    print(f"accuracy (nDCG@10 on test)  original {u['original']['ndcg']:.4f}  "
          f"forget {u['forget']['ndcg']:.4f}  retrain {u['retrain']['ndcg']:.4f}")
    cert = e["certificate"]
    print(f"certificate (max row gradient; 0 = stationary)  original {cert['original']:.3e}  "
          f"forget {cert['forget']:.3e}  retrain {cert['retrain']:.3e}  "
          f"(tolerance {e['tolerance']:.3e}, converged {'yes' if e['converged'] else 'no'})")
    return 0


def _demo_verdict(report):
    """'complete', 'NOT complete' or 'too few pairs to judge (n = ...)'."""
    from .audit.intervals import Verdict, min_forgotten_pairs
    from .audit.membership import verdict_text

    verdict = report.verdict()
    if verdict is not Verdict.TOO_FEW_PAIRS:
        return "complete" if verdict is Verdict.COMPLETE else "NOT complete"
    n_forgotten, n_unseen = (report.completeness["forget"][key]
                             for key in ("n_forgotten", "n_unseen"))
    return verdict_text(verdict, n_forgotten, n_unseen, min_forgotten_pairs(n_unseen))


# ---------------------------------------------------------------- parser

def _column_options(p):
    group = p.add_argument_group(
        "columns", "which column holds what: a header name or a 1-based column number "
                   "(default: by the header's names, else user,item,value,timestamp)")
    for role, extra in (("user", ""), ("item", ""), ("value", "; 'none': no values, every "
                                                               "interaction counts 1"),
                        ("timestamp", "; 'none': no timestamp column")):
        group.add_argument(f"--{role}-col", metavar="NAME|N", help=f"the {role} column{extra}")


def build_parser():
    from . import __version__
    from .data import FORMATS

    parser = _Parser(prog=PROG, description=(
        "ALS recommenders that can forget training data. Run 'fastunlearn demo' for a "
        "self-contained tour: fit, forget a user and 1% of the interactions, and compare "
        "with retraining from scratch."))
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="fit, forget and compare with a retrain (no input needed)",
                       description="Fit ImplicitALS on seeded synthetic data (or MovieLens), "
                                   "forget a random 1% of the interactions (by default, and "
                                   "without a washout), retrain from scratch with three seeds "
                                   "and compare time, certificate, nDCG@10 and whether the "
                                   "forgotten pairs can be told from held-out ones by the "
                                   "score, rank and likelihood-ratio attackers "
                                   "(audit.reports).")
    p.add_argument("--movielens", metavar="PATH", help="MovieLens 100K u.data instead of "
                                                       "synthetic data")
    p.add_argument("--users", type=int, default=20_000, help="synthetic users (default 20000)")
    p.add_argument("--items", type=int, default=5_000, help="synthetic items (default 5000)")
    p.add_argument("--nnz", type=int, default=400_000,
                   help="synthetic interactions (default 400000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--shadows", type=int, default=8, metavar="N",
                   help="shadow models of the likelihood-ratio attacker (even, >= 4), each "
                        "one more fit; 0 skips the attack (default 8)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="fit a model on an interaction file",
                       description="Read DATA (csv, tsv, MovieLens, Parquet, npz), fit an ALS "
                                   "model and "
                                   "save it, with the external id maps, to MODEL.")
    p.add_argument("data", metavar="DATA", help="interaction file: user,item[,value[,timestamp]]")
    p.add_argument("-o", "--output", metavar="MODEL", required=True,
                   help="model file to write (.npz appended when missing)")
    p.add_argument("--explicit", action="store_true",
                   help="explicit ratings (ExplicitALS) instead of implicit feedback")
    p.add_argument("--factors", type=int, default=64, help="latent factors (default 64)")
    p.add_argument("--iterations", type=int, default=15, help="ALS sweeps (default 15)")
    p.add_argument("--regularization", type=float, default=None,
                   help="L2 regularisation (default 0.01 implicit, 0.1 explicit)")
    p.add_argument("--alpha", type=float, default=None,
                   help="confidence scale for implicit feedback (default 1.0)")
    p.add_argument("--solver", choices=("cg", "cholesky"), default="cg",
                   help="row solver for fitting (default cg)")
    p.add_argument("--threads", type=int, default=0, help="threads, 0 = all cores (default 0)")
    p.add_argument("--seed", type=int, default=None, help="random seed for the initial factors")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="input format (default: by file name, delimiter by content)")
    _column_options(p)
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("forget", help="remove interactions, users or items from a model",
                       description="Remove interactions from MODEL and re-converge; writes the "
                                   "new model to OUT (MODEL is only overwritten with "
                                   "--in-place) and prints the forget report.")
    p.add_argument("model", metavar="MODEL")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--pairs", metavar="FILE",
                      help="file of user,item[,value] pairs to forget (external ids)")
    what.add_argument("--users", nargs="+", metavar="ID", help="forget these users' histories")
    what.add_argument("--items", nargs="+", metavar="ID", help="forget every interaction "
                                                               "with these items")
    p.add_argument("-o", "--output", metavar="OUT", help="model file to write")
    p.add_argument("--in-place", action="store_true", help="overwrite MODEL")
    p.add_argument("--tolerance", type=float, default=None,
                   help="target certificate max_row (default: the model's before forgetting)")
    p.add_argument("--washout", type=_washout, default="auto", metavar="auto|refit|N",
                   help="completeness: 'auto' (default) as the library's forget, 'refit' to "
                        "refit from the model's seed now, else the number of over-relaxed "
                        "sweeps to run now (0: none in the request); whatever is still "
                        "pending is washed out before the model is saved")
    p.add_argument("--exact-certificate", action="store_true",
                   help="measure the certificate after exactly (one more pass over the data) "
                        "instead of reporting the engine's proven upper bound")
    p.add_argument("--missing", choices=("raise", "ignore"), default="raise",
                   help="ids already forgotten, ids the model does not know and pairs "
                        "not stored: error (default), or skip them, counted and listed, so "
                        "that a repeated request is a no-op")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="format of the --pairs file")
    _column_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("recommend", help="top-N items for a user",
                       description="Top-N items for one user, leaving out the items the user "
                                   "already has.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--user", required=True, metavar="ID", help="external user id")
    p.add_argument("-n", type=int, default=10,
                   help="number of items (default 10; 0: an empty list)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("similar", help="items most similar to an item",
                       description="Items most similar to ITEM by cosine of their factors "
                                   "(the item itself left out).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--item", required=True, metavar="ID", help="external item id")
    p.add_argument("-n", type=int, default=10,
                   help="number of items (default 10; 0: an empty list)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("audit", help="utility and fairness of a model on held-out data",
                       description="Evaluate MODEL on the interactions of FILE (external ids, "
                                   "read with the model's id maps): precision, recall, nDCG, "
                                   "hit rate at k and AUC for implicit models (items in the "
                                   "model's training data are not ranked), RMSE and MAE for "
                                   "explicit ones, and the fairness gap: the metric of the 20% "
                                   "most active users minus the rest's. Test rows whose user "
                                   "or item the model does not know are skipped and counted.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--test", required=True, metavar="FILE",
                   help="held-out interactions: user,item[,value[,timestamp]]")
    p.add_argument("--k", type=int, default=10, help="cut-off of the top-k metrics (default 10)")
    p.add_argument("--forgotten", metavar="FILE",
                   help="pairs MODEL forgot (user,item[,value]): also run the completeness "
                        "test, forgotten vs held-out pairs of the same users against three "
                        "retrains on MODEL's data (audit.completeness)")
    p.add_argument("--shadows", type=int, default=0, metavar="N",
                   help="with --forgotten, also run the likelihood-ratio attacker on N shadow "
                        "models (even, >= 4; 16 is a good start); each shadow is one more fit "
                        "of MODEL's size (default 0: not run)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar of the retrains on stderr (shown only on a terminal)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="format of the test file (default: by file name)")
    _column_options(p)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("info", help="describe a model file",
                       description="Kind, sizes, hyperparameters, certificate, loss and the "
                                   "history of forget receipts of a model file.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return 0 if exc.code in (0, None) else 2
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except CLIError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
