"""Seed 2 Fig. 3a: how many effective parameters the XOR mixture needs against the linear one, at the same ν.

Gaussian-mixture studies that share every setting but the task (``gmm_task``), the seed and the separation
(``gmm_nu``, or ``gmm_bayes_accuracy`` where ν was set through it) are paired by separation and seed. For each
separation: per task, mean ± std over seeds of the dense and the best pruned model's test accuracy and the best
pruned model's effective parameters (non-zero kernel weights; test-chosen, Definition 1, and validation-chosen),
and the XOR ÷ linear ratio of effective parameters, formed per seed and then averaged (its std is the spread over
replicates). Seed 2 reports ≈ 2×.

Pure functions over ``StudyRecord``s; the figure is drawn on ``matplotlib.figure.Figure`` and returned as PNG bytes.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from keras_sdd.analysis import curves
from keras_sdd.analysis.plots import finish
from keras_sdd.analysis.replicates import NOT_SETTINGS, StudyRecord, mean_std

TASKS = ("linear", "xor")
#: The settings that set a mixture's separation, in order of precedence (``gmm_nu`` > 0 overrides the other).
SEPARATION = ("gmm_nu", "gmm_bayes_accuracy")


def separation(r: StudyRecord) -> tuple:
    """(setting name, value) that set the study's separation: ν itself, or the Bayes accuracy it was derived from
    (the same Bayes accuracy gives the two tasks *different* ν; the table then says so)."""
    nu = r.settings.get("gmm_nu") or 0
    return ("gmm_nu", float(nu)) if nu > 0 else ("gmm_bayes_accuracy", float(r.settings["gmm_bayes_accuracy"]))


def _nu(r: StudyRecord) -> Optional[float]:
    """The ν the study ran with, as its summary recorded it (None for a study that has no summary yet)."""
    extras = ((r.summary or {}).get("dataset") or {}).get("extras") or {}
    return extras.get("nu")


def _family_key(r: StudyRecord) -> str:
    leave = NOT_SETTINGS | {"gmm_task", "seed", *SEPARATION}
    return json.dumps({k: v for k, v in sorted(r.settings.items()) if k not in leave}, sort_keys=True, default=str)


def _task_numbers(members: Sequence[StudyRecord]) -> Dict[str, Any]:
    dense, best_test, best_val, eff_test, eff_val, columns = [], [], [], [], [], set()
    for m in members:
        best = curves.best_pruned(m.rows)
        dense.append(m.rows[0].get("test_accuracy"))
        t, v = best.get("test_chosen") or {}, best.get("val_chosen") or {}
        best_test.append(t.get("test_accuracy"))
        best_val.append(v.get("test_accuracy"))
        eff_test.append(t.get("effective_params"))
        eff_val.append(v.get("effective_params"))
        columns.update(c for c in (t.get("effective_params_column"), v.get("effective_params_column")) if c)
    return {"seeds": [m.config.get("seed") for m in members], "nu": mean_std([_nu(m) for m in members]),
            "dense_test_accuracy": mean_std(dense), "best_test_accuracy_test_chosen": mean_std(best_test),
            "best_test_accuracy_val_chosen": mean_std(best_val), "effective_params_test_chosen": mean_std(eff_test),
            "effective_params_val_chosen": mean_std(eff_val), "effective_params_columns": sorted(columns)}


def _ratio(by_task: Dict[str, Dict[Any, StudyRecord]], chosen: str) -> Dict[str, Any]:
    """XOR ÷ linear effective parameters per seed both tasks ran, then mean ± std over those seeds."""
    ratios = []
    for seed in sorted(set(by_task["linear"]) & set(by_task["xor"]), key=str):
        lin = (curves.best_pruned(by_task["linear"][seed].rows).get(chosen) or {}).get("effective_params")
        xor = (curves.best_pruned(by_task["xor"][seed].rows).get(chosen) or {}).get("effective_params")
        ratios.append(xor / lin if lin and xor is not None else None)
    return mean_std(ratios)


def task_ratios(records: Sequence[StudyRecord]) -> List[Dict[str, Any]]:
    """One row per family and separation holding both tasks: ``{'family', 'separation', 'value', 'linear': {...},
    'xor': {...}, 'ratio_test_chosen', 'ratio_val_chosen', 'pruned_beats_dense': {task: bool}}``."""
    groups: Dict[str, Dict[tuple, Dict[str, Dict[Any, StudyRecord]]]] = {}
    for r in records:
        if r.settings.get("dataset") != "gaussian_mixture" or not r.rows or r.settings.get("gmm_task") not in TASKS:
            continue
        by_sep = groups.setdefault(_family_key(r), {})
        by_sep.setdefault(separation(r), {t: {} for t in TASKS})[r.settings["gmm_task"]][r.config.get("seed")] = r
    families = [k for k, v in groups.items() if any(all(t[x] for x in TASKS) for t in v.values())]
    out = []
    for i, key in enumerate(families):
        label = f"family {i + 1}" if len(families) > 1 else "mixtures"
        for (name, value), by_task in sorted(groups[key].items(), key=lambda kv: kv[0]):
            if not all(by_task[t] for t in TASKS):
                continue
            tasks = {t: _task_numbers(list(by_task[t].values())) for t in TASKS}
            beats = {t: (tasks[t]["best_test_accuracy_val_chosen"]["mean"] or 0) >
                        (tasks[t]["dense_test_accuracy"]["mean"] or 1) for t in TASKS}
            out.append({"family": label, "separation": name, "value": value, **tasks,
                        "ratio_test_chosen": _ratio(by_task, "test_chosen"),
                        "ratio_val_chosen": _ratio(by_task, "val_chosen"), "pruned_beats_dense": beats})
    return out


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """The Fig. 3a table: effective parameters per task and separation, and the XOR ÷ linear ratio."""
    from keras_sdd.analysis.tables import EFFECTIVE_PARAMS, fmt

    lines = ["## XOR ÷ linear effective parameters (seed paper 2, Fig. 3a)", "",
             f"Effective params: {EFFECTIVE_PARAMS}, of the best pruned model chosen by test accuracy (Definition 1) "
             "or by validation accuracy; mean ± std over seeds. Ratio: XOR ÷ linear per seed, then mean ± std. "
             "Accuracies: dense model, and the validation-chosen best pruned model (\"beats dense\" compares the "
             "two means). ν is the distance between cluster means as keras_sdd defines it (linear ±ν/2·u, XOR "
             "±ν/2·u1 ±ν/2·u2); seed 2's ν may be scaled differently.", "",
             "| separation | ν linear / XOR | linear: dense → best pruned acc | XOR: dense → best pruned acc | "
             "linear params (test / val-chosen) | XOR params (test / val-chosen) | XOR ÷ linear (test-chosen) | "
             "XOR ÷ linear (val-chosen) | seeds |", "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lin, xor = r["linear"], r["xor"]

        def acc(t):
            mark = "" if r["pruned_beats_dense"][t] else " (not better)"
            return (f"{fmt(r[t]['dense_test_accuracy'], 100, 1, pct=True)} → "
                    f"{fmt(r[t]['best_test_accuracy_val_chosen'], 100, 1, pct=True)}{mark}")
        nus = " / ".join(fmt(x["nu"], digits=2) for x in (lin, xor))
        lines.append(f"| {r['separation']}={r['value']:g} | {nus} | {acc('linear')} | {acc('xor')} | "
                     f"{fmt(lin['effective_params_test_chosen'], integer=True)} / "
                     f"{fmt(lin['effective_params_val_chosen'], integer=True)} | "
                     f"{fmt(xor['effective_params_test_chosen'], integer=True)} / "
                     f"{fmt(xor['effective_params_val_chosen'], integer=True)} | "
                     f"{fmt(r['ratio_test_chosen'], digits=2)} | {fmt(r['ratio_val_chosen'], digits=2)} | "
                     f"{','.join(map(str, lin['seeds']))} |")
    return "\n".join(lines) + "\n"


def ratio_png(rows: Sequence[Dict[str, Any]]) -> Optional[bytes]:
    """Effective parameters (test-chosen, mean ± std) per task against the separation, the ratio in the legend."""
    from matplotlib.figure import Figure

    if not rows:
        return None
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for family in dict.fromkeys(r["family"] for r in rows):
        part = [r for r in rows if r["family"] == family]
        xs = [r["value"] for r in part]
        for j, task in enumerate(TASKS):
            ax.errorbar(xs, [r[task]["effective_params_test_chosen"]["mean"] for r in part],
                        yerr=[r[task]["effective_params_test_chosen"]["std"] or 0.0 for r in part], fmt="-o",
                        capsize=3, color=f"C{j}", label=f"{task} ({family})" if len(rows) > len(xs) else task)
        for r in part:
            m = r["ratio_test_chosen"]["mean"]
            if m is not None:
                ax.annotate(f"×{m:.2f}", (r["value"], r["xor"]["effective_params_test_chosen"]["mean"]),
                            textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_title("effective parameters of the best pruned model; XOR ÷ linear annotated", fontsize=9)
    return finish(fig, ax, part[0]["separation"], "non-zero kernel weights (best pruned, test-chosen)", log_x=False)
