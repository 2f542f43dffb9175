"""Learning-rate restart for Keras 3 optimizers: iteration count and slots back to zero, the learning rate kept."""
from __future__ import annotations

from keras import ops


def reset_optimizer(optimizer) -> None:
    """Zeroes ``iterations`` (so a schedule starts over) and every slot variable (momenta, second moments...),
    keeping a float learning rate's variable; a LossScaleOptimizer's scale is kept too (its inner one is reset)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    keep = {id(getattr(inner, "_learning_rate", None))}
    for v in inner.variables:
        if id(v) in keep:
            continue
        v.assign(ops.zeros(v.shape, v.dtype))
