"""Models of finished rounds, rebuilt from a study directory without writing to it: teachers, analysis, reports.

``load_round(dir, k)`` rebuilds the study's model through the same assembly code the study used, restores round
k's checkpoint (weights and masks; masks applied, so stored weights are exactly sparse) and, with
``strip=True``, removes the tfmot wrappers. ``load_best(dir)`` picks the round of highest validation accuracy.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, Optional

import tf_keras

from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.study import checkpoints, directory, paths
from keras_sdd.study.assemble import build_student, wrap_student
from keras_sdd.study.records import RoundRecords, is_number


@dataclass
class LoadedRound:
    """A round's model with what the study recorded about it."""

    model: tf_keras.Model
    round: int
    row: Dict[str, Any]
    config: StudyConfig
    study_dir: pathlib.Path
    input_shape: tuple
    num_classes: int


def shape_and_classes(study_dir: pathlib.Path, config: StudyConfig):
    """Input shape and number of classes: from summary.json when written, else from the data (cheap for most)."""
    p = paths.StudyPaths(study_dir)
    try:
        info = json.loads(p.summary.read_text())["dataset"]
        return tuple(int(s) for s in info["input_shape"]), int(info["num_classes"])
    except (OSError, ValueError, KeyError, TypeError):
        from keras_sdd import data

        bundle = data.load(config.dataset, **config.data_options())
        return tuple(bundle.info.input_shape), bundle.info.num_classes


def study_rows(study_dir: paths.PathLike):
    """(config, parsed rows) of a study directory; ConfigError when it is not a study or is damaged."""
    root = pathlib.Path(study_dir)
    if not paths.StudyPaths(root).is_study():
        raise ConfigError(f"{root} is not a study directory (no {paths.CONFIG})")
    config = directory.read_config(root)
    rows = RoundRecords(root).check()
    if not rows:
        raise ConfigError(f"{root} has no finished round yet")
    return config, rows


def load_round(study_dir: paths.PathLike, round_index: int = 0, *, strip: bool = False) -> LoadedRound:
    """Round ``round_index`` of the study in ``study_dir`` (read only). ``strip``: without tfmot wrappers."""
    root = pathlib.Path(study_dir)
    config, rows = study_rows(root)
    if not 0 <= round_index < len(rows):
        raise ConfigError(f"{root} has no round {round_index}; it records rounds 0..{len(rows) - 1}")
    prefix = paths.StudyPaths(root).round_checkpoint(round_index)
    checkpoints.verify(prefix)
    input_shape, num_classes = shape_and_classes(root, config)
    model = wrap_student(config, build_student(config, input_shape, num_classes))
    checkpoints.restore_model(model, prefix)
    tfmot_bridge.apply_masks(model)
    if strip:
        model = tfmot_bridge.strip(model)
    return LoadedRound(model, round_index, rows[round_index], config, root, input_shape, num_classes)


def best_round(rows, by: str = "val_accuracy") -> int:
    """Index of the round with the highest ``by`` (first on ties); ConfigError when no round recorded it."""
    scored = [(r.get(by), i) for i, r in enumerate(rows) if is_number(r.get(by))]
    if not scored:
        raise ConfigError(f"no round records {by}")
    best = max(v for v, _ in scored)
    return min(i for v, i in scored if v == best)


def load_best(study_dir: paths.PathLike, *, by: str = "val_accuracy", strip: bool = False) -> LoadedRound:
    """The round of highest validation accuracy ("the pruned model in its best-fit regime")."""
    _, rows = study_rows(study_dir)
    return load_round(study_dir, best_round(rows, by), strip=strip)


def load_saved_model(path: paths.PathLike) -> tf_keras.Model:
    """A saved Keras model file (.keras, .h5 or a SavedModel folder); ConfigError when it cannot be read."""
    from keras_sdd.pruning.fixed_mask_wrapper import FixedMaskPruneLowMagnitude  # noqa: F401 (registers it)
    import tensorflow_model_optimization as tfmot

    try:
        with tfmot.sparsity.keras.prune_scope():
            model = tf_keras.models.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001  (Keras raises many types for a bad file)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot load a Keras model from {path}: {first}") from None
    if any(isinstance(layer, tfmot_bridge.PruneLowMagnitude) for layer in model.layers):
        model = tfmot_bridge.strip(model)
    return model


def parse_teacher(spec: str) -> Dict[str, Optional[Any]]:
    """``DIR`` | ``DIR:best`` | ``DIR:round=K`` | a model file -> {'path', 'select': 'dense'|'best'|'round', 'round'}."""
    path, select, k = spec, "dense", 0
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if tail == "best":
            path, select, k = head, "best", None
        elif tail.startswith("round="):
            try:
                path, select, k = head, "round", int(tail[len("round="):])
            except ValueError:
                raise ConfigError(f"--teacher={spec}: ':round=K' needs an integer K") from None
            if k < 0:
                raise ConfigError(f"--teacher={spec}: the round must be >= 0")
    return {"path": path, "select": select, "round": k}
