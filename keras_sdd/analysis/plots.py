"""The report's figures, drawn on ``matplotlib.figure.Figure`` (never pyplot: a notebook's backend is untouched).

Each function returns PNG bytes, or None when the studies hold nothing to draw."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_sdd.analysis.calibration import reliability
from keras_sdd.analysis.replicates import Group
from keras_sdd.study.board import figure_png, mark_best_and_phases


def _figure(ncols: int = 1, width: float = 7.0, dpi: int = 100):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols if ncols > 1 else width, 4.4), dpi=dpi)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def finish(fig, ax, xlabel: str, ylabel: str, *, log_x: bool = True, invert_x: bool = False) -> bytes:
    """Axis labels, log x-axis (pruning runs right when inverted), grid, legend; the figure as PNG bytes."""
    if log_x:
        ax.set_xscale("log")
    if invert_x:
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)


def accuracy_vs_params(groups: Sequence[Group]) -> Optional[bytes]:
    """Test (solid) and train-on-noisy-labels (dashed) accuracy against remaining kernel weights, log x-axis as the
    papers draw it; one colour per group, a band of ± one std over replicates; each group's validation-chosen
    best round dotted; for a single study also its SDD phases shaded."""
    # the papers' x-axis: remaining (non-zero) kernel weights; an older study without them: all parameters
    key = ("nonzero_weights" if all(r.get("nonzero_weights") is not None for g in groups for m in g.members
                                    for r in m.rows) else "remaining_params")
    fig, (ax,) = _figure()
    drawn = False
    for i, g in enumerate(groups):
        params, _ = g.mean_std(key)
        colour = f"C{i % 10}"
        for key, style, suffix in (("test_accuracy", "-", "test"), ("train_noisy_accuracy", "--", "train (noisy)")):
            mean, std = g.mean_std(key)
            ok = ~np.isnan(mean) & ~np.isnan(params)
            if not ok.any():
                continue
            ax.plot(params[ok], 100 * mean[ok], style, color=colour, marker="o" if style == "-" else None, ms=3,
                    label=f"{g.label} — {suffix}" + (f" (n={len(g.members)})" if len(g.members) > 1 else ""))
            if len(g.members) > 1:
                ax.fill_between(params[ok], 100 * (mean - std)[ok], 100 * (mean + std)[ok], color=colour, alpha=0.15)
            drawn = True
        val, _ = g.mean_std("val_accuracy")
        if drawn and val.size and not np.all(np.isnan(val)) and len(groups) > 1:
            best = int(np.nanargmax(val))       # the group's validation-chosen best round (mean over replicates)
            ax.axvline(params[best], color=colour, ls=":", lw=1, label=f"{g.label} — best pruned: round {best}")
    if not drawn:
        return None
    if len(groups) == 1 and len(groups[0].members) == 1:   # one study: its best round and its phases
        mark_best_and_phases(ax, groups[0].members[0].rows, lambda r: r.get(key) or float("nan"))
    elif len(groups) == 1:
        params, _ = groups[0].mean_std(key)
        val, _ = groups[0].mean_std("val_accuracy")
        if not np.all(np.isnan(val)):
            best = int(np.nanargmax(val))
            ax.axvline(params[best], color="k", ls=":", lw=1, label=f"best pruned (mean val-chosen): round {best}")
    label = "non-zero kernel weights" if key == "nonzero_weights" else "remaining parameters (biases included)"
    return finish(fig, ax, f"{label} (log scale; pruning goes right)", "accuracy (%)", invert_x=True)


def ece_vs_sparsity(groups: Sequence[Group]) -> Optional[bytes]:
    """ECE against clean and noisy test labels with the test accuracy, against sparsity (seed 2 Fig. 7)."""
    with_ece = [g for g in groups if not np.all(np.isnan(g.column("ece_clean")))]
    if not with_ece:
        return None
    fig, (ax,) = _figure()
    acc_ax = ax.twinx()
    for i, g in enumerate(with_ece):
        colour = f"C{i % 10}"
        s, _ = g.mean_std("sparsity")
        x = 100 * np.maximum(1 - s, 1e-6)
        for key, style in (("ece_clean", "-"), ("ece_noisy", ":")):
            mean, _ = g.mean_std(key)
            if not np.all(np.isnan(mean)):
                ax.plot(x, mean, style, color=colour, marker="o", ms=2, label=f"{g.label} — {key.replace('_', ' ')}")
        acc, _ = g.mean_std("test_accuracy")
        acc_ax.plot(x, 100 * acc, "--", color=colour, alpha=0.5)
    acc_ax.set_ylabel("test accuracy (%) (dashed)")
    return finish(fig, ax, "remaining weights (%)", "ECE (solid: clean labels, dotted: noisy labels)", invert_x=True)


def reliability_diagrams(panels: Dict[str, Dict[str, np.ndarray]], bins: int = 15, dpi: int = 100
                         ) -> Optional[bytes]:
    """Reliability diagrams side by side (e.g. dense vs best pruned; seed 2 Fig. 6): accuracy per confidence bin
    against the diagonal, each panel's ECE (``bins`` equal-width bins) in its title; ``panels`` maps a title to
    {'probs', 'labels'}."""
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=4.2, dpi=dpi)
    for ax, (title, p) in zip(axes, panels.items()):
        r = reliability(p["probs"], p["labels"], bins)
        centers = (r.edges[:-1] + r.edges[1:]) / 2
        ok = r.count > 0
        ax.bar(centers[ok], r.accuracy[ok], width=1 / bins, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}\nECE = {r.ece:.4f} ({bins} bins)", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.08 if len(panels) > 1 else 0.13, right=0.98, bottom=0.12, top=0.86, wspace=0.25)
    return figure_png(fig)


def bayes_posterior_png(probs: np.ndarray, bayes_proba: np.ndarray, title: str = "", dpi: int = 60,
                        max_points: int = 1000) -> bytes:
    """The model's P(y=1|x) on the test points against the Bayes posterior (seed 2 Fig. 5a), both against the
    Bayes log-odds of each point — for the linear mixture that is ν times the coordinate along the mean
    direction, so the Bayes curve is the sigmoid and the model's points scatter around it (an over-confident
    model's are steeper); for XOR it is the one coordinate the Bayes posterior depends on. The title's mean gap
    is over all points; at most ``max_points`` of them (evenly spaced along the axis) are drawn."""
    from matplotlib.figure import Figure

    b = np.clip(np.asarray(bayes_proba, np.float64)[:, 1], 1e-12, 1 - 1e-12)
    model = np.asarray(probs, np.float64)[:, 1]
    logit = np.log(b) - np.log1p(-b)
    order = np.argsort(logit, kind="stable")
    gap = float(np.mean(np.abs(model - b)))
    shown = order[np.linspace(0, len(order) - 1, min(len(order), max_points)).astype(int)]
    fig = Figure(figsize=(5.0, 3.6), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(logit[shown], model[shown], s=3, alpha=0.4, label="model P(y=1|x)")
    ax.plot(logit[shown], b[shown], "k-", lw=1.5, label="Bayes P(y=1|x)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("Bayes log-odds (linear task: ∝ position along the mean direction)", fontsize=8)
    ax.set_ylabel("P(y=1|x)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{title}: mean |model − Bayes| = {gap:.4f}".lstrip(": "), fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.9)
    return figure_png(fig)


def bayes_scatter(panels: Dict[str, Dict[str, np.ndarray]]) -> Optional[bytes]:
    """Model vs Bayes-optimal P(y=1|x) on the test points (seed 2 Fig. 5), one panel per model."""
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=4.2)
    for ax, (title, p) in zip(axes, panels.items()):
        ax.scatter(p["bayes_proba"][:, 1], p["probs"][:, 1], s=2, alpha=0.3)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlabel("Bayes-optimal P(y=1|x)")
        ax.set_ylabel("model P(y=1|x)")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


__all__: List[str] = ["finish", "accuracy_vs_params", "ece_vs_sparsity", "reliability_diagrams", "bayes_scatter",
                       "bayes_posterior_png"]
