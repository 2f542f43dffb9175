"""Sweeps over widths (seed paper 2): model-wise double descent and the sparse double descent of every width.

Studies that share every setting but ``width`` and ``seed`` form a *family* (e.g. one task and noise rate); per
family and width, replicate seeds give mean ± std of:
- the dense model: parameters and test error (the model-wise double-descent curve);
- the best pruned model (Definition 1, test-chosen, and the validation-chosen one): effective parameters
  (Definition 2) and test error — seed 2 Table 1 and Figs. 3a / 4;
and the best *small dense* model of the family (the dense width of lowest validation error), which seed 2
compares with the best pruned model in calibration (Fig. 5).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from keras_sdd.analysis import curves
from keras_sdd.analysis.replicates import NOT_SETTINGS, StudyRecord
from keras_sdd.analysis.plots import finish


def _family_key(r: StudyRecord) -> str:
    return json.dumps({k: v for k, v in sorted(r.settings.items()) if k not in NOT_SETTINGS | {"width", "hidden"}},
                      sort_keys=True, default=str)


def _family_label(r: StudyRecord, varying: Sequence[str]) -> str:
    parts = [f"{k}={r.settings.get(k)}" for k in varying]
    return ", ".join(parts) if parts else f"{r.config.get('model')} on {r.config.get('dataset')}"


def families(records: Sequence[StudyRecord]) -> List[Dict[str, Any]]:
    """Width families with at least two widths: [{'label', 'widths': {width: [records]}}], in first-seen order."""
    fams: Dict[str, Dict[Any, List[StudyRecord]]] = {}
    for r in records:
        fams.setdefault(_family_key(r), {}).setdefault(r.config.get("width"), []).append(r)
    fams = {k: v for k, v in fams.items() if len(v) >= 2}
    if not fams:
        return []
    configs = [json.loads(k) for k in fams]
    varying = sorted({k for c in configs for k in c if len({json.dumps(x.get(k), default=str) for x in configs}) > 1})
    out = []
    for key, widths in fams.items():
        first = next(iter(widths.values()))[0]
        out.append({"label": _family_label(first, varying), "widths": dict(sorted(
            widths.items(), key=lambda kv: float(kv[0]) if kv[0] is not None else -1.0))})
    return out


def width_rows(family: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Seed 2 Table 1 rows of one family, one per width (``tables.lottery_numbers`` over its seeds)."""
    from keras_sdd.analysis.tables import lottery_numbers

    rows = []
    for width, members in family["widths"].items():
        if isinstance(width, float) and width.is_integer():
            width = int(width)
        rows.append({"family": family["label"], "width": width, "seeds": [m.config.get("seed") for m in members],
                     **lottery_numbers(members)})
    return rows


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
    from keras_sdd.analysis.tables import fmt

    lines = ["## Full vs best pruned model per width (seed paper 2, Table 1 form)", "",
             "| family | width | full params | full test error | effective params (best pruned) | its test error |"
             " seeds |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['width']} | {fmt(r['full_params'], integer=True)} | "
                     f"{fmt(r['full_test_error'], digits=3)} | {fmt(r['best_params_test_chosen'], integer=True)} | "
                     f"{fmt(r['best_test_error_test_chosen'], digits=3)} | {','.join(map(str, r['seeds']))} |")
    return "\n".join(lines) + "\n"


def double_descent_png(family: Dict[str, Any]) -> Optional[bytes]:
    """Test error vs parameters: the dense models of every width (model-wise curve, black) and each width's
    sparse curve along its pruning (mean over seeds), log x-axis (seed 2 Figs. 1–2)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    dense_x, dense_y = [], []
    for i, (width, members) in enumerate(family["widths"].items()):
        n = min(len(m.rows) for m in members)
        params = np.mean([[r.get("remaining_params") or np.nan for r in m.rows[:n]] for m in members], axis=0)
        err = np.mean([[1 - r["test_accuracy"] for r in m.rows[:n]] for m in members], axis=0)
        ax.plot(params, err, "-", color=f"C{i % 10}", alpha=0.8, lw=1, label=f"width {width} (pruned)")
        dense_x.append(params[0])
        dense_y.append(err[0])
    ax.plot(dense_x, dense_y, "k-o", lw=2, ms=5, label="dense models (model-wise)")
    ax.set_title(family["label"], fontsize=9)
    return finish(fig, ax, "parameters (log scale)", "test error")


def effective_params_png(families_: Sequence[Dict[str, Any]]) -> Optional[bytes]:
    """Effective parameters of the best pruned model against width, one line per family (seed 2 Figs. 3a, 4)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for i, fam in enumerate(families_):
        rows = width_rows(fam)
        known = [r for r in rows if r["best_params_test_chosen"]["mean"] is not None]
        xs = [float(r["width"]) for r in known]
        ys = [r["best_params_test_chosen"]["mean"] for r in known]
        es = [r["best_params_test_chosen"]["std"] for r in known]
        if xs:
            ax.errorbar(xs, ys, yerr=es, fmt="-o", color=f"C{i % 10}", capsize=3, label=fam["label"])
    return finish(fig, ax, "width", "effective parameters (best pruned model)")
