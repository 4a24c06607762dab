"""One consistent matplotlib style for the course figures, and a few plotting helpers."""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["use_style", "QUADRANT_COLORS", "quadrant_colors", "scatter", "density_image", "table"]

QUADRANT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def use_style() -> None:
    """Apply the course style (call once per chapter, after importing matplotlib)."""
    mpl.rcParams.update({
        "figure.figsize": (6.0, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.25,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.frameon": False,
        "image.cmap": "viridis",
    })


def quadrant_colors(z) -> np.ndarray:
    """A colour per 2-D point by the quadrant it starts in (as in Jang's deformation figure)."""
    z = np.asarray(z)
    idx = (z[:, 0] < 0).astype(int) + 2 * (z[:, 1] < 0).astype(int)
    return np.asarray(QUADRANT_COLORS)[idx]


def scatter(ax, x, title=None, **kw):
    """Scatter ``(N, 2)`` points with small markers, equal aspect."""
    x = np.asarray(x)
    kw = {"s": 2, "alpha": 0.5, "linewidths": 0, **kw}
    ax.scatter(x[:, 0], x[:, 1], **kw)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax


def density_image(ax, log_prob, xlim, ylim, n=200, title=None, **kw):
    """Show ``exp(log_prob)`` on an ``n x n`` grid. ``log_prob`` maps ``(M, 2) -> (M,)``."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    pts = np.stack([X.ravel(), Y.ravel()], axis=1).astype(np.float32)
    dens = np.exp(np.asarray(log_prob(pts))).reshape(n, n)
    ax.imshow(dens, origin="lower", extent=(*xlim, *ylim), aspect="auto", **kw)
    if title:
        ax.set_title(title)
    return ax


def table(head, rows):
    """An HTML table (``IPython.display.HTML``) with header ``head`` and ``rows`` (lists of cells).

    Cells are shown with ``str``; Jupyter and the built book render it as a table.
    """
    from html import escape

    from IPython.display import HTML

    cells = lambda row, tag: "".join(f"<{tag}>{escape(str(v))}</{tag}>" for v in row)
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return HTML(f"<table><thead><tr>{cells(head, 'th')}</tr></thead><tbody>{body}</tbody></table>")


try:  # the book's glue (myst-nb); absent e.g. in Colab, where `from nfcore.plot import glue` fails
    from myst_nb import glue as _myst_glue

    def glue(name, value, display=True):
        """myst-nb's ``glue``, with 0-d arrays (numpy, JAX) passed as Python numbers it can format."""
        _myst_glue(name, value.item() if getattr(value, "ndim", None) == 0 else value, display)
except ImportError:
    pass
