"""The distributed model's internals (docs/design.md, section 9): row
blocks and the work on them (:mod:`.blocks`, run by workers), their
placement and whole-model passes (:mod:`.cluster`), and the forgetting
engine's backend over them (:mod:`.backend`).  The estimators are in
:mod:`fastunlearn.dask`."""
