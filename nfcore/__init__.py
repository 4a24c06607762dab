"""nfcore — a small, tested normalizing-flow library in plain JAX (the code behind the course)."""
from .bijection import Bijection, bijection, static
from .chain import Chain, Invert, Stack
from .distributions import Normal, Transformed, Uniform
from .elementwise import Affine, Exp, LeakyReLU, Logit, Scale, Shift, Sigmoid, SmoothLeakyReLU, Softplus, Tanh
from .linear import Linear
from .lowrank import LowRankAffine

__version__ = "0.1.0"

__all__ = [
    "Bijection", "bijection", "static",
    "Chain", "Invert", "Stack",
    "Normal", "Uniform", "Transformed",
    "Shift", "Scale", "Affine", "Exp", "Softplus", "Sigmoid", "Logit", "Tanh", "LeakyReLU", "SmoothLeakyReLU",
    "Linear", "LowRankAffine",
]

from . import nn, targets, transformers  # noqa: E402
from .coupling import Coupling, alternating_masks, coupling_flow, nice, realnvp  # noqa: E402
from .actnorm import ActNorm  # noqa: E402
from .autoregressive import MaskedAutoregressive, iaf, maf  # noqa: E402
from .glow import glow  # noqa: E402
from .layered import layered_flow  # noqa: E402
from .made import MADE  # noqa: E402
from .mlp_flow import mlp_flow  # noqa: E402
from .spline import RationalQuadraticSpline, nsf  # noqa: E402
from .nn import MLP  # noqa: E402
from .train import FitResult, fit, kl_divergence, nll  # noqa: E402

__all__ += ["nn", "plot", "targets", "transformers", "Coupling", "alternating_masks", "coupling_flow",
            "nice", "realnvp", "mlp_flow", "MLP", "ActNorm", "MaskedAutoregressive", "maf", "iaf",
            "glow", "layered_flow", "MADE", "RationalQuadraticSpline", "nsf", "FitResult", "fit", "kl_divergence", "nll"]


def __getattr__(name):
    # nfcore.plot imports matplotlib (~0.3 s, ~35 MB): loaded on first use, not with nfcore
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'nfcore' has no attribute {name!r}")
