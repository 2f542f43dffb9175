"""How many rounds a study runs, the sparsity each aims at, and how many epochs each trains: the one rule both
Keras paths follow (pure; no TensorFlow)."""
from __future__ import annotations

from typing import List

from keras_sdd.config import StudyConfig
from keras_sdd.pruning import masks as mask_lib


def round_targets(config: StudyConfig) -> List[float]:
    """Target global sparsity of every round, round 0 (dense) included: ``prune_fraction`` of the remaining
    weights a round until ``final_sparsity``, at most ``max_rounds`` pruning rounds."""
    targets = mask_lib.round_targets(config.prune_fraction, config.final_sparsity)
    if config.max_rounds:
        targets = targets[: config.max_rounds]
    return [0.0] + targets


def epochs_of_round(config: StudyConfig, round_index: int) -> int:
    """Epochs of round ``round_index``: the dense run's, then each retraining's."""
    return config.epochs if round_index == 0 else config.round_epochs
