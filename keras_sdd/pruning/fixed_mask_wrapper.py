"""FixedMaskPruneLowMagnitude: tfmot's PruneLowMagnitude, minus the per-step work that fixed masks don't need.

Under a FixedMaskSchedule the masks change only between rounds (assigned from outside), so the stock wrapper's
per-step step increment, step assertion and ``tf.cond`` on the schedule are dead weight. This subclass keeps
what matters (``weight *= mask`` before the forward pass, so the forward always sees masked weights) and is
still a PruneLowMagnitude for tfmot (``strip_pruning``, ``UpdatePruningStep``, the registry). Whether the stock
path is needed is decided when the call is traced: give it any other schedule (``set_schedule``) and it behaves
exactly as tfmot's wrapper after a rebuild of the train function.
"""
from __future__ import annotations

import inspect

import tf_keras
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from keras_sdd.pruning.schedules import FixedMaskSchedule


@tf_keras.utils.register_keras_serializable(package="keras_sdd")
class FixedMaskPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    def call(self, inputs, training=None, **kwargs):
        if not isinstance(self.pruning_schedule, FixedMaskSchedule):
            return super().call(inputs, training=training, **kwargs)
        self.add_update(self.pruning_obj.weight_mask_op())
        if "training" in inspect.getfullargspec(self.layer.call).args:
            return self.layer.call(inputs, training=training, **kwargs)
        return self.layer.call(inputs, **kwargs)
