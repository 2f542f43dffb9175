"""Sweeps over widths (seed paper 2): model-wise double descent and the sparse double descent of every width.

Studies that share every setting but the width (``width``, or the FCN's ``hidden`` widths) and the seed form a
*family* (e.g. one task and noise rate); per family and width, replicate seeds give mean ± std of:
- the dense model: parameters and test error (the model-wise double-descent curve);
- the best pruned model (Definition 1, test-chosen, and the validation-chosen one): effective parameters
  (Definition 2: its non-zero weights) and test error — seed 2 Table 1 and Figs. 3a / 4;
and the best *small dense* model of the family (the dense width of highest validation accuracy), which seed 2
compares with the best pruned model in calibration (Fig. 5). ``effective_params_vs`` draws effective parameters
against any other setting (the Gaussian mixtures' separation, the number of classes) per task.

Pure functions over ``StudyRecord``s (``keras_sdd.analysis.replicates.find_records``); the figures are drawn on
``matplotlib.figure.Figure`` (never pyplot) and returned as PNG bytes, or None when there is nothing to draw.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from keras_sdd.analysis import curves
from keras_sdd.analysis.plots import finish
from keras_sdd.analysis.replicates import NOT_SETTINGS, StudyRecord, mean_std

#: Settings that make the width of a model (the family of a width sweep varies only these and the seed).
WIDTH_SETTINGS = ("width", "hidden")


def width_of(r: StudyRecord) -> Any:
    """A study's width: ``width``, or its FCN hidden widths joined by '-' (``hidden=(300, 100)`` -> '300-100')."""
    w = r.config.get("width")
    if w is None and r.config.get("hidden"):
        return "-".join(str(int(h)) for h in r.config["hidden"])
    if isinstance(w, float) and w.is_integer():
        return int(w)
    return w


def _dense_params(r: StudyRecord) -> Optional[float]:
    return curves.effective_params(r.rows[0])["value"] if r.rows else None


def _key(r: StudyRecord, leave_out: Sequence[str]) -> str:
    return json.dumps({k: v for k, v in sorted(r.settings.items()) if k not in NOT_SETTINGS | set(leave_out)},
                      sort_keys=True, default=str)


def _labels(keys: Sequence[str], first: Sequence[StudyRecord]) -> List[str]:
    """Each group's label: the settings that differ between the groups (else model on dataset)."""
    configs = [json.loads(k) for k in keys]
    varying = sorted({k for c in configs for k in c if len({json.dumps(x.get(k), default=str) for x in configs}) > 1})
    return [", ".join(f"{k}={r.settings.get(k)}" for k in varying) if varying else
            f"{r.config.get('model')} on {r.config.get('dataset')}" for r in first]


def families(records: Sequence[StudyRecord]) -> List[Dict[str, Any]]:
    """Width families with at least two widths: ``[{'label', 'widths': {width: [records]}}]``, families in
    first-seen order, widths by their dense parameter count (mean over seeds)."""
    fams: Dict[str, Dict[Any, List[StudyRecord]]] = {}
    for r in records:
        if r.rows:
            fams.setdefault(_key(r, WIDTH_SETTINGS), {}).setdefault(width_of(r), []).append(r)
    fams = {k: v for k, v in fams.items() if len(v) >= 2}
    labels = _labels(list(fams), [next(iter(w.values()))[0] for w in fams.values()])

    def size(item):
        known = [p for p in (_dense_params(m) for m in item[1]) if p is not None]
        w = item[0]
        return (float(np.mean(known)) if known else math.inf, float(w) if isinstance(w, (int, float)) else 0.0)

    return [{"label": label, "widths": dict(sorted(widths.items(), key=size))}
            for label, widths in zip(labels, fams.values())]


def width_rows(family: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Seed 2 Table 1 rows of one family, one per width: mean ± std over its seeds of the full model's parameters
    and test error and the best pruned model's (test-chosen and validation-chosen) effective parameters and test
    error (``tables.lottery_numbers``)."""
    from keras_sdd.analysis.tables import lottery_numbers

    return [{"family": family["label"], "width": width, "seeds": [m.config.get("seed") for m in members],
             **lottery_numbers(members)} for width, members in family["widths"].items()]


def best_small_dense(family: Dict[str, Any]) -> Optional[StudyRecord]:
    """The member whose dense model (round 0) has the highest validation accuracy."""
    best, best_val = None, -1.0
    for members in family["widths"].values():
        for m in members:
            v = m.rows[0].get("val_accuracy") if m.rows else None
            if isinstance(v, float) and v > best_val:
                best, best_val = m, v
    return best


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """Seed 2 Table 1 form: full vs best pruned parameters and test error per width (mean ± std over seeds)."""
    from keras_sdd.analysis.tables import EFFECTIVE_PARAMS, fmt

    lines = ["## Full vs best pruned model per width (seed paper 2, Table 1 form)", "",
             f"Params: {EFFECTIVE_PARAMS} (the full model's: all its kernel weights, seed 2's \"Full\" column).", "",
             "| family | width | full params | full test error | effective params (best pruned) | its test error |"
             " effective params (val-chosen) | its test error | seeds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['width']} | {fmt(r['full_params'], integer=True)} | "
                     f"{fmt(r['full_test_error'], digits=3)} | {fmt(r['best_params_test_chosen'], integer=True)} | "
                     f"{fmt(r['best_test_error_test_chosen'], digits=3)} | "
                     f"{fmt(r['best_params_val_chosen'], integer=True)} | "
                     f"{fmt(r['best_test_error_val_chosen'], digits=3)} | {','.join(map(str, r['seeds']))} |")
    return "\n".join(lines) + "\n"


def _column(members: Sequence[StudyRecord], key: str, n: int, fn=lambda v: v) -> np.ndarray:
    return np.array([[fn(r[key]) if isinstance(r.get(key), (int, float)) else np.nan for r in m.rows[:n]]
                     for m in members], dtype=np.float64)


def double_descent_png(family: Dict[str, Any]) -> Optional[bytes]:
    """Seed 2 Figs. 1–2: test error against parameters. The dense model of every width (the model-wise curve,
    black, ± std over seeds), each width's sparse curve along its pruning (mean over seeds, non-zero weights) and
    its best pruned model (test-chosen, star), log x-axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    dense_x, dense_y, dense_e = [], [], []
    for i, (width, members) in enumerate(family["widths"].items()):
        n = min(len(m.rows) for m in members)
        params = np.array([[curves.effective_params(r)["value"] or np.nan for r in m.rows[:n]] for m in members],
                          dtype=np.float64)
        err = _column(members, "test_accuracy", n, lambda a: 1.0 - a)
        with np.errstate(invalid="ignore"):
            px, ey = np.nanmean(params, axis=0), np.nanmean(err, axis=0)
        colour = f"C{i % 10}"
        ax.plot(px, ey, "-", color=colour, alpha=0.8, lw=1, label=f"width {width}, pruned")
        best = [curves.best_pruned(m.rows).get("test_chosen") or {} for m in members]
        bx = [b["effective_params"] for b in best if b.get("effective_params") is not None]
        by = [b["test_error"] for b in best if b.get("test_error") is not None]
        if bx and by:
            ax.plot([np.mean(bx)], [np.mean(by)], "*", color=colour, ms=11, mec="k", mew=0.5)
        dense_x.append(px[0])
        dense_y.append(ey[0])
        dense_e.append(float(np.nanstd(err[:, 0])) if len(members) > 1 else 0.0)
    ax.errorbar(dense_x, dense_y, yerr=dense_e, fmt="k-o", lw=2, ms=5, capsize=3, label="dense models (model-wise)")
    ax.plot([], [], "*", color="grey", ms=11, mec="k", mew=0.5, label="best pruned (test-chosen)")
    ax.set_title(family["label"], fontsize=9)
    return finish(fig, ax, "parameters (non-zero weights, log scale)", "test error")


def effective_params_png(families_: Sequence[Dict[str, Any]]) -> Optional[bytes]:
    """Seed 2 Figs. 3a / 4: effective parameters of the best pruned model (test-chosen, mean ± std over seeds)
    against the dense model's parameters, one line per family (e.g. per task): the widths' best pruned models end
    at similar sizes although the dense models differ by orders of magnitude. The dotted line is y = x."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    drawn, lo, hi = False, math.inf, 0.0
    for i, fam in enumerate(families_):
        rows = [r for r in width_rows(fam) if r["best_params_test_chosen"]["mean"] is not None
                and r["full_params"]["mean"] is not None]
        if not rows:
            continue
        xs = [r["full_params"]["mean"] for r in rows]
        ys = [r["best_params_test_chosen"]["mean"] for r in rows]
        ax.errorbar(xs, ys, yerr=[r["best_params_test_chosen"]["std"] for r in rows], fmt="-o", color=f"C{i % 10}",
                    capsize=3, label=fam["label"])
        for x, y, r in zip(xs, ys, rows):
            ax.annotate(f"w={r['width']}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
        lo, hi, drawn = min(lo, *xs, *ys), max(hi, *xs), True
    if not drawn:
        return None
    ax.plot([lo, hi], [lo, hi], ":", color="grey", lw=1, label="y = x (no pruning)")
    ax.set_yscale("log")
    return finish(fig, ax, "dense model kernel weights (log scale)",
                  "effective params: non-zero kernel weights (best pruned)")


def varying_settings(records: Sequence[StudyRecord]) -> List[str]:
    """The settings (other than width, seed and running options) whose values differ between the studies."""
    seen: Dict[str, set] = {}
    for r in records:
        for k, v in r.settings.items():
            if k not in NOT_SETTINGS and k not in WIDTH_SETTINGS:
                seen.setdefault(k, set()).add(json.dumps(v, sort_keys=True, default=str))
    return sorted(k for k, vals in seen.items() if len(vals) > 1)


def effective_params_vs(records: Sequence[StudyRecord], setting: str) -> List[Dict[str, Any]]:
    """Effective parameters (test-chosen best pruned model, mean ± std over seeds) against ``setting``, one line per
    group of studies sharing every other setting (e.g. per task over ``gmm_bayes_accuracy``: seed 2 Fig. 4; over
    ``classes``): ``[{'label', 'points': [{'value', 'effective_params', 'test_error', 'seeds'}]}]``, groups with
    at least two values."""
    groups: Dict[str, Dict[str, List[StudyRecord]]] = {}
    for r in records:
        if r.rows:
            value = json.dumps(r.settings.get(setting), sort_keys=True, default=str)
            groups.setdefault(_key(r, (setting,)), {}).setdefault(value, []).append(r)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    labels = _labels(list(groups), [next(iter(v.values()))[0] for v in groups.values()])
    out = []
    for label, values in zip(labels, groups.values()):
        points = []
        for value, members in values.items():
            best = [curves.best_pruned(m.rows).get("test_chosen") or {} for m in members]
            points.append({"value": json.loads(value), "seeds": [m.config.get("seed") for m in members],
                           "effective_params": mean_std([b.get("effective_params") for b in best]),
                           "test_error": mean_std([b.get("test_error") for b in best])})
        points.sort(key=lambda p: (len(p["value"]) if isinstance(p["value"], list) else p["value"])
                    if isinstance(p["value"], (int, float, list)) else str(p["value"]))
        out.append({"label": label, "points": points})
    return out


def effective_params_vs_png(records: Sequence[StudyRecord], setting: str) -> Optional[bytes]:
    """``effective_params_vs`` drawn: one line per group (a list-valued setting, e.g. ``classes``, by its
    length)."""
    from matplotlib.figure import Figure

    lines = effective_params_vs(records, setting)
    if not lines:
        return None
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    numeric = True
    for i, line in enumerate(lines):
        xs = [len(p["value"]) if isinstance(p["value"], list) else p["value"] for p in line["points"]]
        numeric = numeric and all(isinstance(x, (int, float)) for x in xs)
        if not numeric:
            xs = list(range(len(xs)))
            ax.set_xticks(xs, [str(p["value"]) for p in line["points"]], fontsize=7)
        ax.errorbar(xs, [p["effective_params"]["mean"] for p in line["points"]],
                    yerr=[p["effective_params"]["std"] or 0.0 for p in line["points"]], fmt="-o",
                    color=f"C{i % 10}", capsize=3, label=line["label"])
    xlabel = f"number of {setting}" if any(isinstance(p["value"], list) for ln in lines for p in ln["points"]) \
        else setting
    return finish(fig, ax, xlabel, "effective parameters (best pruned model)", log_x=False)
