"""Take over a model trained by Spark MLlib's ALS (docs/design.md, section 9).

A saved ``pyspark.ml.recommendation.ALSModel`` is a directory:
``metadata/part-*`` (one JSON line: class, uid, ``paramMap`` and ``rank``),
``userFactors/`` and ``itemFactors/`` (Parquet, columns ``id`` (int) and
``features`` (array of float)).  It is read with pyarrow, without a JVM.

The model's file does not hold the estimator's ``regParam``, ``alpha`` or
``implicitPrefs`` (they belong to the ``ALS`` estimator, not the model), so
they are arguments here.  How Spark's objectives map onto ours:

* explicit (``implicitPrefs=False``): Spark minimises
  ``sum (r - x.y)^2 + regParam (sum_u n_u |x_u|^2 + sum_i n_i |y_i|^2)``
  (ALS-WR), which is exactly ``ExplicitALS(weighted_regularization=True,
  regularization=regParam)``.
* implicit: Spark's confidence is ``1 + alpha |r|`` with preference
  ``r > 0``; stored values are rewritten as ``sign(r) (1 + alpha |r|)`` for
  an ``ImplicitALS(alpha=1)``, which gives exactly that data term (zero
  ratings, which Spark treats as unobserved, are dropped).  Spark also
  scales each row's regularisation by its number of positive ratings;
  ``ImplicitALS`` has one ``regularization`` for every row, by default
  ``regParam`` times the mean number of positive ratings per user.  The
  imported factors are therefore near, not at, a stationary point of the
  objective that forgetting keeps: the certificate says how far, and the
  first forget (or ``fit(..., warm_start=True)``) converges them to it.
"""
import glob
import json
import os

import numpy as np
import scipy.sparse as sp

from .models import ExplicitALS, ImplicitALS

__all__ = ["from_spark", "read_spark_factors"]


def _parquet_dir(path):
    files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {path!r}: not a saved ALSModel")
    return files


def read_spark_factors(path):
    """(metadata dict, user ids, user factors, item ids, item factors) of a
    saved Spark ``ALSModel`` directory."""
    import pyarrow.parquet as pq

    parts = sorted(glob.glob(os.path.join(path, "metadata", "part-*")))
    if not parts:
        raise FileNotFoundError(f"{path!r} has no metadata/part-* file: not a saved ALSModel")
    with open(parts[0], encoding="utf-8") as handle:
        metadata = json.loads(handle.readline())
    if not str(metadata.get("class", "")).endswith("ALSModel"):
        raise ValueError(f"{path!r} holds a {metadata.get('class')!r}, not an ALSModel")
    rank = int(metadata["rank"])
    out = [metadata]
    for side in ("userFactors", "itemFactors"):
        tables = [pq.read_table(f, columns=["id", "features"])
                  for f in _parquet_dir(os.path.join(path, side))]
        ids = np.concatenate([t["id"].to_numpy().astype(np.int64) for t in tables])
        rows = [np.asarray(v, dtype=np.float32) for t in tables
                for v in t["features"].to_pylist()]
        F = np.stack(rows) if rows else np.zeros((0, rank), np.float32)
        if F.shape[1] != rank:
            raise ValueError(f"{side} rows have {F.shape[1]} features, metadata says {rank}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{side} repeats ids")
        out += [ids, F]
    return tuple(out)


def _place(ids, F, positions, n, name):
    """Factors of ``n`` rows from Spark's (id, features) rows: ``positions``
    maps each row to its Spark id (None: row r is id r); rows Spark has no
    factors for (no ratings) get zeros."""
    spark_ids = np.arange(n) if positions is None else np.asarray(positions, np.int64)
    if len(spark_ids) != n:
        raise ValueError(f"{name} has {len(spark_ids)} ids for {n} rows")
    out = np.zeros((n, F.shape[1]), dtype=np.float32)
    if not len(ids):
        return out
    order = np.argsort(ids)
    sorted_ids, sorted_F = ids[order], F[order]
    at = np.minimum(np.searchsorted(sorted_ids, spark_ids), len(ids) - 1)
    found = sorted_ids[at] == spark_ids
    out[found] = sorted_F[at[found]]
    return out


def from_spark(path, user_items, *, implicit_prefs, reg_param, alpha=1.0, user_ids=None,
               item_ids=None, regularization=None, **hyperparameters):
    """A fastunlearn model from a saved Spark ``ALSModel``, ready to serve
    and to forget from.

    Parameters
    ----------
    path : str
        The directory ``ALSModel.save`` wrote.
    user_items : scipy.sparse matrix (n_users, n_items)
        The ratings the model was trained on (Spark's raw ratings).
    implicit_prefs, reg_param, alpha
        The ``ALS`` estimator's ``implicitPrefs``, ``regParam`` and ``alpha``.
    user_ids, item_ids : arrays, optional
        Spark's id of each row and column of ``user_items`` (default: row r
        is Spark id r).
    regularization : float, optional
        Implicit only: the constant regularisation that replaces Spark's
        per-row ``regParam * n_u`` (default ``reg_param`` times the mean
        number of positive ratings per user who has any).
    **hyperparameters
        Other constructor arguments (``iterations``, ``use_cg``, ...).

    Returns
    -------
    ExplicitALS or ImplicitALS
    """
    metadata, uids, U, iids, V = read_spark_factors(path)
    csr = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    n_users, n_items = csr.shape
    X = _place(uids, U, user_ids, n_users, "user_ids")
    Y = _place(iids, V, item_ids, n_items, "item_ids")
    hyperparameters.setdefault("factors", X.shape[1])
    if not implicit_prefs:
        model = ExplicitALS.from_factors(X, Y, csr, regularization=float(reg_param),
                                         weighted_regularization=True, **hyperparameters)
    else:
        csr.data = np.sign(csr.data) * (1.0 + float(alpha) * np.abs(csr.data))
        csr.eliminate_zeros()  # zero ratings: unobserved for Spark
        if regularization is None:
            positives = np.asarray((csr > 0).sum(axis=1)).ravel()
            positives = positives[positives > 0]
            regularization = float(reg_param) * (positives.mean() if len(positives) else 1.0)
        model = ImplicitALS.from_factors(X, Y, csr, regularization=float(regularization),
                                         alpha=1.0, **hyperparameters)
    model.metadata["imported_from"] = {"library": "spark", "uid": metadata.get("uid"),
                                       "sparkVersion": metadata.get("sparkVersion")}
    return model
