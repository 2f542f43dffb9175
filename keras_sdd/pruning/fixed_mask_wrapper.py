"""FixedMaskPruneLowMagnitude: tfmot's PruneLowMagnitude, minus the per-step work that fixed masks don't need.

Under a FixedMaskSchedule the masks change only between rounds (assigned from outside), so the stock wrapper's
per-step step increment, step assertion and ``tf.cond`` on the schedule are dead weight. This subclass keeps
what matters (``weight *= mask`` before the forward pass, so the forward always sees masked weights) and is
still a PruneLowMagnitude for tfmot (``strip_pruning``, ``UpdatePruningStep``, the registry). Whether the stock
path is needed is decided when the call is traced: give it any other schedule (``set_schedule``) and it behaves
exactly as tfmot's wrapper after a rebuild of the train function.

Mixed precision: the wrapper takes the wrapped layer's dtype policy (so Keras casts its inputs and variables to
the layer's compute dtype), and the mask is applied to the float32 variable itself, the mask cast to the
variable's dtype — tfmot's own mask op multiplies a float16 read of the weight by a float32 mask and fails.
"""
from __future__ import annotations

import inspect

import tensorflow as tf
import tf_keras
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from keras_sdd.pruning.schedules import FixedMaskSchedule


def _variable(weight):
    """The stored variable behind a mixed-precision AutoCastVariable (the weight itself otherwise)."""
    return getattr(weight, "_variable", weight)


@tf_keras.utils.register_keras_serializable(package="keras_sdd")
class FixedMaskPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    def mask_weights(self):
        """weight *= mask on the stored (float32) variables."""
        ops = []
        for weight, mask, _ in self.pruning_vars:
            var = _variable(weight)
            ops.append(var.assign(var * tf.cast(mask, var.dtype)))
        return tf.group(*ops)

    def call(self, inputs, training=None, **kwargs):
        if not isinstance(self.pruning_schedule, FixedMaskSchedule):
            return super().call(inputs, training=training, **kwargs)
        self.add_update(self.mask_weights())
        if "training" in inspect.getfullargspec(self.layer.call).args:
            return self.layer.call(inputs, training=training, **kwargs)
        return self.layer.call(inputs, **kwargs)
