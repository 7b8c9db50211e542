"""The Dask section of bench/scaling.py on its own (``python bench/run.py
cluster``): a LocalCluster of 2 worker processes x 1 thread on this machine,
the 2M-entry synthetic set, factors 64.  Fit seconds per iteration against
the local fit on the same cores, then forgetting one median user, 10 random
users and 1 % of the entries: wall time and the bytes the workers sent,
against one broadcast of the item factors.  Not part of ``all``, whose
scaling run already holds this section.
"""
from common import write
from scaling import DIST_HEADER, PARAMS, _dist_rows, data, distributed


def run(quick=False, repeats=3):
    nnz, factors, iterations = (20_000, 8, 2) if quick else (2_000_000, 64, 10)
    record = distributed(data(nnz), factors, iterations, repeats)
    if record is None:
        print("dask is not installed (pip install '.[dask]'); nothing to measure")
        return None
    params = {**PARAMS, "factors": factors, "iterations": iterations, "num_threads": 1}
    return write("cluster-quick" if quick else "cluster",
                 {"repeats": repeats, "distributed": record}, _dist_rows(record), DIST_HEADER,
                 params=params)
