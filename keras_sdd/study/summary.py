"""``summary.json``: what a study's rows add up to, written once at the end of every run (both Keras paths).

A pure function of the config, the recorded rows and a few facts of the run, so the tf_keras round loop and the
Keras 3 one write the same keys.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from keras_sdd.analysis import curves
from keras_sdd.config import StudyConfig
from keras_sdd.study.round_plan import round_targets
from keras_sdd.study.records import is_number

#: What ``effective_params`` counts (seed 2's Definition 2).
EFFECTIVE_PARAMS_COUNT = ("nonzero_weights: non-zero kernel weights (Dense/Conv/attention, output layer included; "
                          "biases and normalisation excluded), seed 2's Definition 2")


def early_stop_entry(config: StudyConfig, rule: Optional[curves.EarlyStopping]) -> Optional[Dict[str, Any]]:
    """The live early-stopping rule's state, as the summary records it (None when the rule is off)."""
    if rule is None:
        return None
    return {"fired": rule.fired_at is not None, "stop_round": rule.fired_at, "kept_round": rule.best_round,
            "reason": rule.reason, "patience": config.early_stop_patience, "tolerance": config.early_stop_tolerance}


def study_summary(config: StudyConfig, rows: List[Dict[str, Any]], *, dataset: Dict[str, Any],
                  params: Dict[str, int], early: Optional[Dict[str, Any]], wall: float) -> Dict[str, Any]:
    """The summary of a study whose recorded rounds are ``rows``; ``wall``: seconds of this run."""
    planned = len(round_targets(config))
    test = [r["test_accuracy"] for r in rows]
    val = [r["val_accuracy"] if is_number(r["val_accuracy"]) else float("nan") for r in rows]
    best_val = int(np.nanargmax(val)) if any(v == v for v in val) else None
    best = curves.best_pruned(rows)
    effective = {"count": EFFECTIVE_PARAMS_COUNT,
                 **{sel: ({"round": b["round"], "value": b["effective_params"], "column": b["effective_params_column"],
                           "test_accuracy": b["test_accuracy"]} if b else None) for sel, b in best.items()}}
    return {
        "study": config.study, "config": config.to_dict(), "dataset": dataset, "params": params,
        "rounds_planned": planned, "rounds_done": len(rows),
        "complete": len(rows) == planned or bool(early and early["fired"]), "early_stop": early,
        "dense_test_accuracy": test[0] if test else None,
        "best_val_round": best_val,
        "best_val_round_sparsity": rows[best_val]["sparsity"] if best_val is not None else None,
        "best_val_round_test_accuracy": rows[best_val]["test_accuracy"] if best_val is not None else None,
        "effective_params": effective,
        "train_flops_total": {"dense (seed 1)": rows[-1].get("train_flops_dense_cum") if rows else None,
                              "sparse-aware": rows[-1].get("train_flops_cum") if rows else None},
        "wall_time_s_this_run": wall,
        "wall_time_s_all_rounds": float(sum(r["wall_time_s"] or 0.0 for r in rows)),
    }
