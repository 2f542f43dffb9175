"""A reliability diagram as PNG bytes, drawn with matplotlib's Agg canvas: used by both paths' CalibrationLogger
(tf_keras and Keras 3), so it imports neither Keras."""
from __future__ import annotations

import io

import numpy as np

from keras_sdd.analysis import calibration


def reliability_png(rel: calibration.Reliability, title: str = "") -> bytes:
    """A reliability diagram (Guo et al. 2017, Fig. 1 style) as PNG bytes: accuracy per confidence bin against
    the diagonal, the gap to each bin's mean confidence shaded, and the share of examples per bin beneath.
    Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas: pyplot and the user's backend are untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.8), dpi=80)
    FigureCanvasAgg(fig)
    top = fig.add_axes((0.15, 0.36, 0.8, 0.56))
    bottom = fig.add_axes((0.15, 0.1, 0.8, 0.18), sharex=top)
    lo, width = rel.edges[:-1], np.diff(rel.edges)
    full = rel.count > 0
    top.bar(lo[full], rel.accuracy[full], width[full], align="edge", color="tab:blue", edgecolor="k", lw=0.5,
            label="accuracy")
    top.bar(lo[full], (rel.confidence - rel.accuracy)[full], width[full], bottom=rel.accuracy[full], align="edge",
            color="tab:red", alpha=0.3, hatch="//", edgecolor="tab:red", lw=0.5, label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", lw=1)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title)
    top.legend(loc="upper left", fontsize=7)
    top.tick_params(labelbottom=False)
    share = rel.count / max(1, rel.count.sum())
    bottom.bar(lo, share, width, align="edge", color="0.5", edgecolor="k", lw=0.5)
    bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="share")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
