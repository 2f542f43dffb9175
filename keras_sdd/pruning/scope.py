"""PruneScope: which layers are pruned. Shared by the tf_keras/tfmot path and ``keras_sdd.keras3`` (no imports)."""
from __future__ import annotations

from dataclasses import dataclass

#: Name the model zoo gives its classifier; without it the last Dense is the output layer.
OUTPUT_LAYER_NAME = "logits"


@dataclass(frozen=True)
class PruneScope:
    """Which layers are pruned: Dense and Conv kernels, optionally Dense only, optionally not the output."""

    only_dense: bool = False
    keep_output_dense: bool = False
