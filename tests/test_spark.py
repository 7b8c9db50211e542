"""Importing Spark ALS models: factors written by the test in the layout
``ALSModel.save`` uses (no JVM), objectives checked against dense NumPy."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_spark_model(path, user_ids, U, item_ids, V, rank=None):
    """An ALSModel directory as Spark writes it: JSON metadata and Parquet
    factor tables of (id int32, features array<float>), split in two files
    with rows in no particular order."""
    rank = U.shape[1] if rank is None else rank
    (path / "metadata").mkdir(parents=True)
    meta = {"class": "org.apache.spark.ml.recommendation.ALSModel", "timestamp": 0,
            "sparkVersion": "3.5.1", "uid": "ALS_test", "rank": rank,
            "paramMap": {"userCol": "user", "itemCol": "item", "blockSize": 4096}}
    (path / "metadata" / "part-00000").write_text(json.dumps(meta) + "\n")
    rng = np.random.default_rng(0)
    for name, ids, F in (("userFactors", user_ids, U), ("itemFactors", item_ids, V)):
        (path / name).mkdir()
        order = rng.permutation(len(ids))
        for n, chunk in enumerate(np.array_split(order, 2)):
            table = pa.table({"id": pa.array(np.asarray(ids)[chunk], pa.int32()),
                              "features": pa.array([F[j].astype(np.float32).tolist()
                                                    for j in chunk],
                                                   pa.list_(pa.float32()))})
            pq.write_table(table, path / name / f"part-0000{n}-x.snappy.parquet")


def ratings(seed=0):
    R = sp.random(60, 40, density=0.15, random_state=seed, format="csr")
    R.data = np.ceil(R.data * 5)
    return R


def test_explicit_spark_model_is_als_wr(tmp_path):
    R = ratings()
    trained = fu.ExplicitALS(factors=5, regularization=0.05, weighted_regularization=True,
                             iterations=30, random_state=0).fit(R, show_progress=False)
    write_spark_model(tmp_path, np.arange(60), trained.user_factors, np.arange(40),
                      trained.item_factors)
    model = fu.from_spark(str(tmp_path), R, implicit_prefs=False, reg_param=0.05)
    assert isinstance(model, fu.ExplicitALS) and model.weighted_regularization
    np.testing.assert_array_equal(model.user_factors, trained.user_factors)
    np.testing.assert_array_equal(model.item_factors, trained.item_factors)
    # the ALS-WR objective by hand
    X, Y = model.user_factors.astype(float), model.item_factors.astype(float)
    coo = R.tocoo()
    resid = coo.data - np.einsum("ij,ij->i", X[coo.row], Y[coo.col])
    n_u, n_i = np.diff(R.indptr), np.diff(R.tocsc().indptr)
    expected = (resid ** 2).sum() + 0.05 * ((n_u * (X ** 2).sum(1)).sum()
                                            + (n_i * (Y ** 2).sum(1)).sum())
    assert model.loss() == pytest.approx(expected, rel=1e-5)
    # stationary for ALS-WR as trained, so forgetting keeps that objective
    assert model.certificate().max_row == pytest.approx(trained.certificate().max_row,
                                                        rel=1e-3, abs=1e-5)
    report = model.forget([coo.row[0]], [coo.col[0]])
    assert report.converged


def test_implicit_spark_objective_data_term(tmp_path):
    R = ratings(1)
    R.data[::7] *= -1  # negative ratings: preference 0, confidence 1 + alpha |r|
    rng = np.random.default_rng(1)
    U, V = rng.normal(size=(60, 4)) * 0.3, rng.normal(size=(40, 4)) * 0.3
    write_spark_model(tmp_path, np.arange(60), U, np.arange(40), V)
    alpha, reg = 2.0, 0.1
    model = fu.from_spark(str(tmp_path), R, implicit_prefs=True, reg_param=reg, alpha=alpha)
    assert isinstance(model, fu.ImplicitALS)
    X, Y = model.user_factors.astype(float), model.item_factors.astype(float)
    dense = R.toarray()
    C = np.where(dense != 0, 1 + alpha * np.abs(dense), 1.0)
    P = (dense > 0).astype(float)
    spark_data_term = (C * (P - X @ Y.T) ** 2).sum()
    penalty = model.regularization * ((X ** 2).sum() + (Y ** 2).sum())
    assert model.loss() - penalty == pytest.approx(spark_data_term, rel=1e-5)
    positives = (dense > 0).sum(1)
    assert model.regularization == pytest.approx(reg * positives[positives > 0].mean())


def test_ids_map_and_missing_rows_get_zero_factors(tmp_path):
    R = ratings(2)
    rng = np.random.default_rng(2)
    user_ids = 1000 + 3 * np.arange(60)  # Spark ids of our rows
    U, V = rng.normal(size=(59, 3)), rng.normal(size=(40, 3))
    # Spark has no factors for the last user (say, no ratings in training)
    write_spark_model(tmp_path, user_ids[:59], U, np.arange(40), V)
    model = fu.from_spark(str(tmp_path), R, implicit_prefs=False, reg_param=0.1,
                          user_ids=user_ids)
    np.testing.assert_allclose(model.user_factors[:59], U.astype(np.float32))
    assert not model.user_factors[59].any()
    assert model.metadata["imported_from"]["uid"] == "ALS_test"


def test_not_a_spark_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="ALSModel"):
        fu.from_spark(str(tmp_path), ratings(), implicit_prefs=False, reg_param=0.1)
    write_spark_model(tmp_path / "m", np.arange(60), np.zeros((60, 2)), np.arange(40),
                      np.zeros((40, 2)))
    meta = tmp_path / "m" / "metadata" / "part-00000"
    meta.write_text(meta.read_text().replace("ALSModel", "KMeansModel"))
    with pytest.raises(ValueError, match="not an ALSModel"):
        fu.from_spark(str(tmp_path / "m"), ratings(), implicit_prefs=False, reg_param=0.1)
