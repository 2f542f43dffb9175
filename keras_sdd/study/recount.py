"""The counts an older study did not record, recomputed from what it wrote — read only, nothing is changed.

Studies written before ``nonzero_weights`` (seed 2's effective parameters: kernels only) and
``train_flops_dense`` (seed 1's FLOPs convention) existed hold only the all-weights count and the sparse-aware
FLOPs. ``missing_counts`` rebuilds the study's model once, reads each round's permanent checkpoint (its weights are
stored with the masks applied, so they are exactly sparse) and counts the non-zero kernel weights; the dense
training FLOPs need only the model's shape, the training-set size and each round's epochs. ``apps.report`` uses
it so that old and new studies are reported in the same units.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List

from keras_sdd import models
from keras_sdd.analysis import flops
from keras_sdd.errors import ConfigError
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.study import checkpoints, loading, paths
from keras_sdd.study.assemble import build_student, wrap_student
from keras_sdd.study.records import is_number

#: The columns ``missing_counts`` can fill.
RECOUNTED = ("nonzero_weights", "train_flops_dense", "train_flops_dense_cum")


def _train_size(root: pathlib.Path, config) -> int:
    try:
        return int(json.loads(paths.StudyPaths(root).summary.read_text())["dataset"]["train_size"])
    except (OSError, ValueError, KeyError, TypeError):
        from keras_sdd import data

        return int(data.load(config.dataset, **config.data_options()).info.train_size)


def needs_recount(rows: List[Dict[str, Any]]) -> bool:
    """True when some round lacks one of the ``RECOUNTED`` columns."""
    return any(not is_number(r.get(c)) for r in rows for c in RECOUNTED)


def missing_counts(study_dir: paths.PathLike, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``rows`` with ``nonzero_weights`` and ``train_flops_dense(_cum)`` filled where the study lacks them
    (recorded values are kept as they are). A round whose checkpoint is gone keeps ``nonzero_weights`` None.
    ConfigError when the study's model cannot be rebuilt."""
    root = pathlib.Path(study_dir)
    config, _ = loading.study_rows(root)
    shape, classes = loading.shape_and_classes(root, config)
    model = wrap_student(config, build_student(config, shape, classes))
    per_epoch = 3.0 * flops.inference_flops(model, {}) * _train_size(root, config)
    out, cum = [], 0.0
    for k, row in enumerate(rows):
        row = dict(row)
        if not is_number(row.get("nonzero_weights")):
            prefix = paths.StudyPaths(root).round_checkpoint(k)
            try:
                checkpoints.verify(prefix)
            except ConfigError:
                row["nonzero_weights"] = None
            else:
                checkpoints.restore_model(model, prefix)
                tfmot_bridge.apply_masks(model)
                row["nonzero_weights"] = models.count_nonzero_weights(model)
        if not is_number(row.get("train_flops_dense")):
            row["train_flops_dense"] = per_epoch * row["epochs"] if is_number(row.get("epochs")) else None
        if is_number(row.get("train_flops_dense")) and cum == cum:
            cum += float(row["train_flops_dense"])
        else:
            cum = float("nan")
        if not is_number(row.get("train_flops_dense_cum")):
            row["train_flops_dense_cum"] = cum if cum == cum else None
        out.append(row)
    return out
