"""Multi-scale flows for small images: squeeze, checkerboard / channel masks, factor-out.

An image of shape ``(H, W, C)`` is one flat sample ``(H W C,)`` in row-major ``(h, w, c)`` order.
``Squeeze`` (space -> channels) turns each 2x2 patch into 4 channels, ``(H/2, W/2, 4C)``: a
permutation, log-det 0. ``FactorOut`` applies a bijection to a subset of the coordinates only;
the others go to the base distribution unchanged ("factored out"), so deeper layers act on
fewer, coarser variables (RealNVP's multi-scale architecture).

References: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP",
ICLR 2017; D. P. Kingma, P. Dhariwal, "Glow", NeurIPS 2018.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .bijection import Bijection, static
from .chain import Chain
from .coupling import Coupling
from .validate import positive_int

__all__ = ["Squeeze", "FactorOut", "checkerboard_mask", "channel_mask", "multiscale_encoder"]


def _shape(shape):
    h, w, c = (positive_int(s, "shape") for s in shape)
    return h, w, c


def checkerboard_mask(shape) -> tuple:
    """``True`` where ``(h + w)`` is even, for every channel of an ``(H, W, C)`` image (flat)."""
    h, w, c = _shape(shape)
    return tuple(bool(v) for v in np.broadcast_to((np.add.outer(np.arange(h), np.arange(w)) % 2 == 0)[..., None],
                                                   (h, w, c)).reshape(-1))


def channel_mask(shape) -> tuple:
    """``True`` for the first half of the channels of an ``(H, W, C)`` image (flat); needs ``C >= 2``."""
    h, w, c = _shape(shape)
    if c < 2:
        raise ValueError(f"a channel mask needs at least 2 channels, got shape {shape}; squeeze first.")
    return tuple(bool(v) for v in np.broadcast_to(np.arange(c) < c // 2, (h, w, c)).reshape(-1))


class Squeeze(Bijection):
    """``(H, W, C) -> (H/2, W/2, 4C)``: channel ``4c' + 2i + j`` of pixel ``(h, w)`` is input pixel
    ``(2h + i, 2w + j)``, channel ``c'`` — on flat samples ``(H W C,)``. Inverse: unsqueeze; log-det 0."""

    height: int = static()
    width: int = static()
    channels: int = static()

    def __post_init__(self):
        h, w, _ = _shape((self.height, self.width, self.channels))
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs an even height and width, got {h} x {w}.")

    @property
    def dim(self) -> int:
        return self.height * self.width * self.channels

    def permutation(self) -> np.ndarray:
        """``perm`` with ``squeezed = x[perm]``."""
        h, w, c = self.height, self.width, self.channels
        idx = np.arange(h * w * c).reshape(h // 2, 2, w // 2, 2, c)
        return idx.transpose(0, 2, 4, 1, 3).reshape(-1)

    def forward_and_log_det(self, x):
        return x[self.permutation()], jnp.zeros((), x.dtype)

    def inverse_and_log_det(self, y):
        return y[np.argsort(self.permutation())], jnp.zeros((), y.dtype)


class FactorOut(Bijection):
    """``y[keep] = f(x[keep])``, the other coordinates unchanged; log-det that of ``f``.

    In the density direction the unchanged coordinates are "factored out": they reach the base
    distribution directly, and ``f`` (the deeper layers) models the ``keep`` part only.
    """

    bijection: Bijection
    keep: tuple = static()
    size: int = static()

    def __post_init__(self):
        keep = tuple(int(i) for i in self.keep)
        if not keep or len(set(keep)) != len(keep) or min(keep) < 0 or max(keep) >= self.size:
            raise ValueError(f"keep must be distinct indices in [0, {self.size}), got {self.keep}.")

    @property
    def dim(self) -> int:
        return self.size

    def _apply(self, x, inverse):
        keep = np.asarray(self.keep)
        fn = self.bijection.inverse_and_log_det if inverse else self.bijection.forward_and_log_det
        part, ld = fn(x[keep])
        return x.astype(part.dtype).at[keep].set(part), ld

    def forward_and_log_det(self, x):
        return self._apply(x, False)

    def inverse_and_log_det(self, y):
        return self._apply(y, True)


def multiscale_encoder(key, shape, *, levels: int, couplings: int, hidden, transformer,
                       activation: str = "silu") -> Chain:
    """The density-direction (data -> base) layers: at each of ``levels`` scales ``couplings``
    checkerboard couplings on ``shape``, :class:`Squeeze`, ``couplings`` channel couplings, then
    (but at the last scale) :class:`FactorOut` of half the channels with the next scale inside."""
    h, w, c = shape
    sq = (h // 2, w // 2, 4 * c)
    keys = jax.random.split(key, 2 * couplings + 1)
    masks = [checkerboard_mask(shape), tuple(not m for m in checkerboard_mask(shape))]
    kw = dict(hidden=hidden, transformer=transformer, activation=activation)
    layers = [Coupling.init(keys[i], masks[i % 2], **kw) for i in range(couplings)]
    layers.append(Squeeze(h, w, c))
    cmasks = [channel_mask(sq), tuple(not m for m in channel_mask(sq))]
    layers += [Coupling.init(keys[couplings + i], cmasks[i % 2], **kw) for i in range(couplings)]
    if levels > 1:
        keep = tuple(int(i) for i in np.flatnonzero(channel_mask(sq)))
        inner = multiscale_encoder(keys[-1], (sq[0], sq[1], sq[2] // 2), levels=levels - 1,
                                   couplings=couplings, **kw)
        layers.append(FactorOut(inner, keep, len(cmasks[0])))
    return Chain(layers)


