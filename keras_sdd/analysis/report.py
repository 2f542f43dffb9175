"""A report over any set of study directories: ``analysis.json``, ``tables.md``, figures (PNG and TensorBoard
images) and TensorBoard HParams, so studies compare side by side. Nothing is written into the studies.

Older study directories without the newer columns are reported with what they have; the notes say what is
missing. The report folder holds a marker file, so rewriting a previous report is allowed but nothing else is.
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from keras_sdd.analysis import curves, mixtures, plots, study_notes, tables, widths
from keras_sdd.analysis.replicates import Group, StudyRecord, find_records, group
from keras_sdd.errors import ConfigError
from keras_sdd.study import paths
from keras_sdd.study.records import atomic_write_json

MARKER = ".keras_sdd_report"
#: Columns of newer studies; an older study lacking them is reported without them.
NEWER = {"calibration": ("ece_clean", "ece_noisy"), "FLOPs": ("train_flops_cum",), "CO2": ("co2_g_cum",),
         "non-zero parameters": ("nonzero_params",),
         "non-zero kernel weights (seed 2's count; effective params fall back on the all-weights count, marked †)":
             ("nonzero_weights",),
         "dense-convention FLOPs (seed 1)": ("train_flops_dense_cum",)}
#: Columns a ``recount`` can fill for an older study.
RECOUNTABLE = ("nonzero_weights", "train_flops_dense", "train_flops_dense_cum")


def check_out(out: pathlib.Path) -> None:
    """``out`` must be absent, an empty folder or a previous report (marker file); never other user data."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise ConfigError(f"--out={out} exists and is not an empty folder or a previous report; choose another")


def _missing(records: Sequence[StudyRecord]) -> List[str]:
    notes = []
    for what, cols in NEWER.items():
        lacking = [r for r in records if not all(any(isinstance(row.get(c), (int, float)) and
                                                     not (isinstance(row.get(c), float) and math.isnan(row[c]))
                                                     for row in r.rows) for c in cols)]
        if lacking:
            notes.append(f"no {what} recorded by: " + ", ".join(str(r.dir) for r in lacking)
                         + " (older studies, or the option was off); their cells read n/a")
    return notes


def _predictions(record: StudyRecord, k: int):
    f = paths.StudyPaths(record.dir).round_predictions(k)
    if not f.exists():
        return None
    with np.load(f) as z:
        return {name: z[name] for name in z.files}


def _calibration_panels(records: Sequence[StudyRecord]):
    """Dense vs best pruned (validation-chosen) predictions of the first study that saved them."""
    for r in records:
        best = curves.best_round(r.rows, "val_accuracy")
        dense, pruned = _predictions(r, 0), _predictions(r, best) if best is not None else None
        if dense is not None and pruned is not None:
            rel = {f"{r.label}: dense (round 0)": {"probs": dense["probs"], "labels": dense["y_clean"]},
                   f"{r.label}: best pruned (round {best})": {"probs": pruned["probs"], "labels": pruned["y_clean"]}}
            bayes = ({title: {"probs": p["probs"], "bayes_proba": p["bayes_proba"]}
                      for title, p in zip(rel, (dense, pruned))} if "bayes_proba" in dense else {})
            return rel, bayes, r
    return {}, {}, None


def _family_bayes_panels(family) -> Dict[str, Dict[str, np.ndarray]]:
    """Seed 2 Fig. 5 for a Gaussian-mixture width family: the widest dense model, the best small dense model
    and the widest model's best pruned round, each against the Bayes-optimal probabilities."""
    widest = list(family["widths"].values())[-1][0]
    small = widths.best_small_dense(family)
    best = curves.best_round(widest.rows, "val_accuracy")
    panels = {}
    for title, record, k in ((f"dense, width {widest.config.get('width')}", widest, 0),
                             (f"best small dense, width {small.config.get('width') if small else '?'}", small, 0),
                             (f"best pruned, width {widest.config.get('width')} round {best}", widest, best)):
        pred = _predictions(record, k) if record is not None and k is not None else None
        if pred is not None and "bayes_proba" in pred:
            panels[title] = {"probs": pred["probs"], "bayes_proba": pred["bayes_proba"]}
    return panels


def _hparams(out: pathlib.Path, records: Sequence[StudyRecord]) -> None:
    """One TensorBoard HParams run per study: its settings and headline results."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    keys = ("study", "model", "width", "depth", "dataset", "noise_rate", "l2", "kd_alpha", "kd_temperature",
            "prune_fraction", "retrain", "seed")
    metrics = ("dense_test_accuracy", "best_val_test_accuracy", "best_val_sparsity", "best_test_accuracy")
    root = out / "tensorboard" / "hparams"
    with tf.summary.create_file_writer(str(root)).as_default():
        hp.hparams_config(hparams=[hp.HParam(k) for k in keys], metrics=[hp.Metric(m) for m in metrics])
    for i, r in enumerate(records):
        best = curves.best_pruned(r.rows)
        values = {"dense_test_accuracy": r.rows[0].get("test_accuracy") if r.rows else None,
                  "best_val_test_accuracy": (best["val_chosen"] or {}).get("test_accuracy"),
                  "best_val_sparsity": (best["val_chosen"] or {}).get("sparsity"),
                  "best_test_accuracy": (best["test_chosen"] or {}).get("test_accuracy")}
        with tf.summary.create_file_writer(str(root / f"{i:03d}_{r.dir.name}")).as_default():
            hp.hparams({k: (r.config.get(k) if isinstance(r.config.get(k), (int, float, str, bool)) else
                            str(r.config.get(k))) for k in keys}, trial_id=str(r.dir))
            for m, v in values.items():
                if isinstance(v, (int, float)):
                    tf.summary.scalar(m, float(v), step=0)


def _recount(records: Sequence[StudyRecord], recount: Callable) -> List[str]:
    """Fills the counts older studies lack (``recount(dir, rows) -> rows``, e.g.
    ``keras_sdd.study.recount.missing_counts``) in the records' rows, in memory; says what it did."""
    done, failed = [], []
    for r in records:
        if not any(not _known(row.get(c)) for row in r.rows for c in RECOUNTABLE):
            continue
        try:
            r.rows = recount(r.dir, r.rows)
            done.append(str(r.dir))
        except ConfigError as e:
            failed.append(f"{r.dir} ({e})")
    notes = []
    if done:
        notes.append("non-zero kernel weights recounted from the round checkpoints, and dense-convention FLOPs "
                     "from the model's shape, for studies written before they were recorded: " + ", ".join(done))
    if failed:
        notes.append("could not recount (their effective params keep the all-weights count, marked †): "
                     + "; ".join(failed))
    return notes


def _known(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def build(roots: Sequence[pathlib.Path], out: pathlib.Path, *, patience: int = 2, tolerance: float = 0.01,
          sdd_margin: float = 0.01, recount: Optional[Callable] = None,
          deployment: bool = False) -> Dict[str, Any]:
    """Reads the studies below ``roots`` and writes the report into ``out``; returns the analysis dict.
    ``recount(dir, rows) -> rows`` fills the counts older studies did not record (nothing is written to them);
    ``deployment``: also export each study's validation-chosen round into ``out/deployment`` and tabulate it."""
    check_out(out)
    records = find_records(roots)
    recounted = _recount(records, recount) if recount is not None else []
    groups: List[Group] = group(records)
    cost = tables.cost_rows(groups, patience, tolerance)
    lottery = tables.lottery_rows(groups)
    notes = recounted + _missing(records) + study_notes.notes(records)
    analysis: Dict[str, Any] = {
        "studies": [{"dir": str(r.dir), "label": r.label, "seed": r.config.get("seed"), "rounds": len(r.rows),
                     "complete": r.summary.get("complete"), "sdd": curves.detect_sdd(r.rows, margin=sdd_margin).to_dict(),
                     "phases": curves.phases(r.rows, margin=sdd_margin), "best_pruned": curves.best_pruned(r.rows),
                     "early_stop": curves.early_stop(r.rows, patience, tolerance),
                     "teacher": r.summary.get("teacher")} for r in records],
        "groups": [{"label": g.label, "seeds": g.seeds, "dirs": [str(m.dir) for m in g.members]} for g in groups],
        "cost_table": cost, "lottery_table": lottery, "notes": notes,
        "early_stop_rule": {"patience": patience, "tolerance": tolerance}, "sdd_margin": sdd_margin,
    }
    rel, bayes, source = _calibration_panels(records)
    if not rel:
        notes.append("reliability diagrams need saved test predictions (predictions/round-KKK.npz); "
                     "none of these studies has them")
    figures = {"accuracy_vs_params": plots.accuracy_vs_params(groups), "ece_vs_sparsity": plots.ece_vs_sparsity(groups),
               "reliability_dense_vs_best": plots.reliability_diagrams(rel),
               "bayes_vs_model": plots.bayes_scatter(bayes)}
    fams = widths.families(records)
    width_rows = [row for fam in fams for row in widths.width_rows(fam)]
    analysis["width_table"] = width_rows
    for i, fam in enumerate(fams):
        figures[f"double_descent_{i}"] = widths.double_descent_png(fam)
        figures[f"bayes_dense_small_pruned_{i}"] = plots.bayes_scatter(_family_bayes_panels(fam))
    if fams:
        figures["effective_params_vs_width"] = widths.effective_params_png(fams)
    ratios = mixtures.task_ratios(records)
    analysis["xor_linear_table"] = ratios
    figures["xor_vs_linear_effective_params"] = mixtures.ratio_png(ratios)
    varying = widths.varying_settings(records)
    for setting in ("gmm_nu", "gmm_bayes_accuracy", "classes"):   # seed 2 Fig. 4 and its fewer-classes finding
        if setting in varying:
            figures[f"effective_params_vs_{setting}"] = widths.effective_params_vs_png(records, setting)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m apps.report; safe to overwrite with a new report\n")
    (out / "figures").mkdir(exist_ok=True)
    import tensorflow as tf

    with tf.summary.create_file_writer(str(out / "tensorboard" / "figures")).as_default():
        for name, png in figures.items():
            if png is not None:
                (out / "figures" / f"{name}.png").write_bytes(png)
                tf.summary.image(name, tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=0)
    _hparams(out, records)
    deploy_md = ""
    if deployment:
        from keras_sdd.analysis import deployment as deployment_lib

        analysis["deployment_table"] = deployment_lib.deployment_rows(records, out / "deployment")
        deploy_md = "\n" + deployment_lib.markdown(analysis["deployment_table"])
    analysis["figures"] = [f"figures/{n}.png" for n, png in figures.items() if png is not None]
    atomic_write_json(out / "analysis.json", analysis)
    (out / "tables.md").write_text(tables.markdown(cost, lottery, notes)
                                   + ("\n" + widths.markdown(width_rows) if width_rows else "")
                                   + ("\n" + mixtures.markdown(ratios) if ratios else "") + deploy_md)
    return analysis
