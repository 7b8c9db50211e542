"""What a model is, apart from its data and factors: one frozen value
(:class:`ModelSpec`) that the engine, persistence and the Dask workers
receive instead of an estimator (docs/design.md, section 6)."""
from dataclasses import dataclass

import numpy as np

from .config import effective_n_threads
from .objective import Objective

KINDS = ("implicit", "explicit")


@dataclass(frozen=True)
class ModelSpec:
    """The hyperparameters that fit, forget and files depend on.

    Attributes
    ----------
    objective : Objective
        Which objective the factors minimise, with its scalars.
    factors : int
        Latent dimension k.
    dtype : numpy.dtype
        float32 or float64.
    use_cg : bool
        Conjugate-gradient row solves (``cg_steps`` of them) in fit
        sweeps and the washout's plain sweep; exact Cholesky otherwise.
    cg_steps : int
    num_threads : int
        Kernel threads as given (0: all usable CPUs); :meth:`threads`
        resolves it on the machine that runs the kernels.
    iterations : int
        Sweeps of a fit, and of a washout that refits (docs/design.md,
        section 5).
    random_state : None, int, numpy.random.Generator or RandomState
        The seed a fit, and a refit, draws the initial factors from.
    """

    objective: Objective
    factors: int
    dtype: np.dtype
    use_cg: bool
    cg_steps: int
    num_threads: int
    iterations: int = 15
    random_state: object = None

    @property
    def kind(self):
        """``"implicit"`` or ``"explicit"``: the one place that names it."""
        return kind_of(self.objective.implicit)

    @property
    def solver(self):
        """``(use_cg, cg_steps)`` of the model's own sweeps."""
        return bool(self.use_cg), int(self.cg_steps)

    def threads(self):
        """Kernel threads on this machine (honours OMP_NUM_THREADS and CPU quotas)."""
        return effective_n_threads(self.num_threads)


def kind_of(implicit):
    """The name of the objective family: ``"implicit"`` or ``"explicit"``."""
    return KINDS[0] if implicit else KINDS[1]
