"""fastunlearn: alternating least squares recommenders that can forget.

Fit implicit-feedback or explicit-rating matrix factorisation models, serve
predictions and top-N lists, and remove interactions, users or items so that
the model is certified stationary for the objective a retrain on the
remaining data minimises.
"""
from ._version import __version__
from .config import config_info, show_config
from .forgetting import ForgetReport, PartialFitReport, verify_receipt
from .dropin import AlternatingLeastSquares
from .models import ExplicitALS, ImplicitALS, load
from .objective import Certificate
from .persistence import ModelFileError, save
from .spark import from_spark
from .validation import (
    IdOutOfRangeError,
    ModelFitError,
    NotFittedError,
    ParameterWarning,
)

__all__ = [
    "AlternatingLeastSquares",
    "Certificate",
    "ExplicitALS",
    "ForgetReport",
    "IdOutOfRangeError",
    "ImplicitALS",
    "ModelFileError",
    "ModelFitError",
    "NotFittedError",
    "ParameterWarning",
    "PartialFitReport",
    "__version__",
    "from_spark",
    "load",
    "save",
    "config_info",
    "show_config",
    "verify_receipt",
]
