"""The audit of one served model on held-out data: accuracy, the fairness
gap and, when told what it forgot, the completeness test.  What
``fastunlearn audit`` prints; :func:`.report` instead compares a forget with
a retrain it runs itself."""
from dataclasses import asdict, dataclass

import numpy as np

from ..evaluation import mae, per_user_metrics, rmse, summarise
from ..pairs import check_matrix, check_model, is_stored, pair_keys
from ..validation import check_positive_int
from .fairness import FairnessGap, fairness_gap
from .membership import completeness


@dataclass(frozen=True)
class ModelReport:
    """What :func:`model_report` measured.

    Attributes
    ----------
    kind : {"implicit", "explicit"}
    k : int
        Cut-off of the ranking metrics and of the fairness gap.
    metrics : dict
        Implicit: precision, recall, nDCG, hit rate at ``k`` and AUC, means
        over the users evaluated (:func:`fastunlearn.evaluation.ranking_metrics`).
        Explicit: RMSE and MAE over the test ratings.
    users_evaluated : int
        Users with at least one test pair that counts.
    in_training_data : int or None
        Implicit: test pairs the model was trained on (never ranked, so not
        counted as relevant).  None for explicit models.
    fairness : FairnessGap
    completeness : Completeness or None
        None unless ``forgotten`` was given.
    """

    kind: str
    k: int
    metrics: dict
    users_evaluated: int
    in_training_data: object
    fairness: FairnessGap
    completeness: object

    def to_dict(self):
        out = asdict(self)
        out["fairness"] = self.fairness.to_dict()
        out["completeness"] = None if self.completeness is None else self.completeness.to_dict()
        return out


def model_report(model, test, *, k=10, forgotten=None, repeats=3, seed=0, shadows=0,
                 show_progress=False):
    """Audit ``model`` on held-out interactions ``test``.

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
    test : scipy.sparse matrix (n_users, n_items)
        Interactions (implicit) or ratings (explicit) never trained on.
    k : int >= 1
    forgotten : (users, items) or scipy.sparse matrix, optional
        Pairs the model forgot: adds :func:`completeness` against
        ``repeats`` retrains (seeds ``seed, seed + 1, ...``) on the model's
        retained data.
    repeats, seed : int
    shadows : int
        With ``forgotten``: 0 (default) or the number of shadow models of
        the likelihood-ratio attacker (even, >= 4), each a further fit (see
        :func:`completeness`).
    show_progress : bool
        With ``forgotten``: a progress bar of the retrains on stderr.

    Returns
    -------
    ModelReport

    Raises
    ------
    ValueError
        Bad shapes or parameters, or ``forgotten`` without a user in ``test``.
    """
    shape = check_model(model, "model")
    test = check_matrix(test, "test", shape)
    k = check_positive_int(k, "k")
    per_user = None
    if model.objective.implicit:
        # ranked once, for the metrics and the fairness gap
        per_user = per_user_metrics(model, model.user_items, test, k=k)
        metrics = summarise(per_user)
        users_evaluated = metrics.pop("n_users")
        in_training = int(np.count_nonzero(is_stored(pair_keys(model.user_items),
                                                     pair_keys(test))))
    else:
        metrics = {"rmse": rmse(model, test), "mae": mae(model, test)}
        users_evaluated = int(np.count_nonzero(np.diff(test.indptr)))
        in_training = None
    complete = None
    if forgotten is not None:
        complete = completeness(model, forgotten, test, repeats=repeats, seed=seed,
                                shadows=shadows, show_progress=show_progress)
    return ModelReport("implicit" if model.objective.implicit else "explicit", k, metrics,
                       users_evaluated, in_training,
                       fairness_gap(model, test, k=k, per_user=per_user), complete)

