"""strip: a pruned Keras 3 model back to plain layers with exact zeros (and optionally saved)."""
from __future__ import annotations

import os
from typing import Optional

from keras_sdd.keras3.kernel_masks import prunable_kernels, prune_root, remove_masks


def strip(model, filepath: Optional[os.PathLike] = None):
    """Applies the masks a last time, gives every kernel variable back its own constraint (masks no longer
    applied by the optimizer) and returns the model (a DistillationModel: its student); with ``filepath`` it is
    also saved there (``.keras``). Nothing of keras_sdd is needed to load the file: the layers are plain and the
    zeros are in the weights."""
    remove_masks(prunable_kernels(model, who="strip"))
    plain = prune_root(model)
    if filepath is not None:
        plain.save(os.fspath(filepath))
    return plain
