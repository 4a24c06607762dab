"""nfcore — a small, tested normalizing-flow library in plain JAX (the code behind the course).

Module map (layers import only the protocol, ``nn``, ``transformers`` and ``validate``; every
model builder lives in ``flows``):

- ``bijection``: the protocol (``Bijection``, ``pytree``, ``static``); ``validate``: argument checks
- layers: ``elementwise``, ``linear``, ``lowrank``, ``actnorm``, ``coupling``, ``made``,
  ``autoregressive``, ``chain`` (``Chain``, ``Invert``, ``Stack``, ``unrolled``)
- ``transformers`` (additive, affine, and ``spline``'s rational-quadratic spline), ``nn`` (MLP)
- ``distributions``, ``targets``; ``flows`` (factories); ``training`` (``train``, ``fit``, metrics)
- ``io`` (``save``/``load``), ``testing`` (checks shared by the tests and the chapters), ``plot``
- ``conditional`` (context-conditioned flows, ``fit_conditional``), ``calibration`` (SBC, HPD coverage)
"""
from .bijection import Bijection, pytree, static
from .chain import Chain, Invert, Stack, unrolled
from .distributions import Distribution, Normal, Transformed, Uniform
from .elementwise import Affine, Exp, LeakyReLU, Logit, Scale, Shift, Sigmoid, SmoothLeakyReLU, Softplus, Tanh
from .linear import Linear
from .lowrank import LowRankAffine
from .actnorm import ActNorm
from .coupling import Coupling, alternating_masks
from .made import MADE
from .autoregressive import MaskedAutoregressive
from .spline import RationalQuadraticSpline
from .nn import MLP
from . import nn, targets, transformers, validate
from .flows import coupling_flow, glow, iaf, layered_flow, maf, mlp_flow, nice, nsf, realnvp
from .training import FitResult, fit, kl_divergence, nll, train
from .io import load, save
from .conditional import ConditionalTransformed, Conditioned, conditional_flow, fit_conditional
from . import calibration

__version__ = "0.2.0"

__all__ = [
    "Bijection", "pytree", "static", "Chain", "Invert", "Stack", "unrolled",
    "Distribution", "Normal", "Uniform", "Transformed",
    "Shift", "Scale", "Affine", "Exp", "Softplus", "Sigmoid", "Logit", "Tanh", "LeakyReLU", "SmoothLeakyReLU",
    "Linear", "LowRankAffine", "ActNorm", "Coupling", "alternating_masks", "MADE", "MaskedAutoregressive",
    "RationalQuadraticSpline", "MLP", "nn", "plot", "targets", "transformers", "validate", "testing",
    "coupling_flow", "realnvp", "nice", "nsf", "maf", "iaf", "glow", "mlp_flow", "layered_flow",
    "FitResult", "fit", "train", "nll", "kl_divergence", "save", "load",
    "ConditionalTransformed", "Conditioned", "conditional_flow", "fit_conditional", "calibration",
]

# chapters 8-9: variational inference (planar/radial layers, reverse-KL training and its diagnostics, U1-U4; the lake)
from . import energies  # noqa: E402
from .planar import Planar, Radial  # noqa: E402
from .variational import (ess, fit_reverse_kl, importance_weights, reverse_kl, reverse_kl_loss,  # noqa: E402
                          snis_expectation)

__all__ += ["energies", "Planar", "Radial", "fit_reverse_kl", "reverse_kl_loss", "reverse_kl",
            "importance_weights", "ess", "snis_expectation"]


def __getattr__(name):
    # nfcore.plot imports matplotlib (~0.3 s, ~35 MB) and nfcore.testing is for checks: loaded on first use
    if name in ("plot", "testing"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nfcore' has no attribute {name!r}")

# chapter 10: images (dequantisation, bits per dimension, multi-scale flows)
from .dequantization import (LogitTransform, VariationalDequantizer, bits_per_dim, dequantization_bound,  # noqa: E402
                             dequantize, importance_weighted_bound)
from .multiscale import FactorOut, Squeeze, channel_mask, checkerboard_mask  # noqa: E402
from .flows import multiscale_flow  # noqa: E402

__all__ += ["LogitTransform", "VariationalDequantizer", "bits_per_dim", "dequantization_bound", "dequantize",
            "importance_weighted_bound", "FactorOut", "Squeeze", "channel_mask", "checkerboard_mask",
            "multiscale_flow"]
# chapter 11: continuous-time flows
from . import ode  # noqa: E402
from .continuous import ContinuousFlow, LinearField, VelocityField, fit_flow_matching, flow_matching_loss  # noqa: E402

__all__ += ["ode", "ContinuousFlow", "LinearField", "VelocityField", "fit_flow_matching", "flow_matching_loss"]
