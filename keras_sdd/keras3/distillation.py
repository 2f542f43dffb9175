"""DistillationModel (Keras 3): a pruned student trained to match a frozen teacher, on any Keras 3 backend.

Same objective as ``keras_sdd.distillation`` (tf_keras)::

    loss = (1 − α)·CE(y, student) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ))

(sparse labels, logits, Σ wᵢ·lᵢ / batch size with sample weights) plus the student's own losses (its ℓ2 penalty);
the teacher's are not added. Written as ``compute_loss`` / ``compute_metrics`` overrides, so Keras' own
``train_step`` of each backend trains it. The teacher is made non-trainable and runs in inference mode, so only
the student's variables are updated, and ``IterativeMagnitudePruning`` / ``SparsityLogger`` given this model
prune and read the student only. ``y`` is the labels, or ``(labels, teacher_logits)`` with the teacher's
logits cached (``teacher_logits``): the teacher then does not run. ``fit`` reports ``loss`` (the objective,
student's ℓ2 included, as Keras 3 reports every model's loss) and ``student_loss`` (the student's cross-entropy).
``save``/``save_weights``/``load_weights`` act on the student (the model one deploys).

Unlike ``keras.distillation.Distiller`` (Keras ≥ 3.12): the softmax at temperature τ and the τ² factor are part
of the loss, cached logits are accepted, and the student's regularisation losses are kept.
"""
from __future__ import annotations

import math
from typing import Tuple

import keras
import numpy as np
from keras import ops

from keras_sdd.errors import ConfigError
from keras_sdd.keras_line import require_keras3_model


def _check_settings(alpha, temperature) -> Tuple[float, float]:
    try:
        a, t = float(alpha), float(temperature)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha and temperature must be numbers, got {alpha!r} and {temperature!r}") from None
    if not 0.0 <= a <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1] (the weight of the distillation term), got {alpha!r}")
    if not (t > 0.0 and math.isfinite(t)):
        raise ConfigError(f"temperature must be > 0 and finite, got {temperature!r}")
    return a, t


def _shape(model, what: str, role: str) -> tuple:
    try:
        tensors = getattr(model, what)
    except (AttributeError, ValueError):
        return None
    if not tensors or len(tensors) != 1:
        return None
    return tuple(tensors[0].shape[1:])


def _compatible(a, b) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_pair(student, teacher) -> None:
    """Refuses a teacher that is the student, a pair not both Keras 3 models, and (where both declare Inputs) a
    teacher whose input shape or number of classes differs from the student's."""
    require_keras3_model(student, "DistillationModel")
    require_keras3_model(teacher, "DistillationModel")
    if teacher is student:
        raise ConfigError("the teacher is the student itself; distil from a separate model (e.g. a clone)")
    for what, label in (("inputs", "inputs of shape"), ("outputs", "outputs of shape")):
        s, t = _shape(student, what, "student"), _shape(teacher, what, "teacher")
        if s is not None and t is not None and not _compatible(s, t):
            raise ConfigError(f"the teacher takes/gives {label} {t} but the student {s}")


def distillation_losses(labels, student_logits, teacher_logits, alpha: float, temperature: float):
    """Per-example (total, cross-entropy, KL) in float32, with ``keras.ops`` (any backend); KL(p_t ‖ p_s) with
    p = softmax(logits/τ) from log-softmaxes (stable for large logits)."""
    s = ops.cast(student_logits, "float32")
    t = ops.cast(teacher_logits, "float32")
    ce = keras.losses.sparse_categorical_crossentropy(labels, s, from_logits=True)
    log_p_t = ops.log_softmax(t / temperature, axis=-1)
    log_p_s = ops.log_softmax(s / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    total = (1.0 - alpha) * ce + (alpha * temperature ** 2) * kl
    return total, ce, kl


def _split_targets(y):
    if isinstance(y, (tuple, list)):
        if len(y) != 2:
            raise ConfigError(f"y must be the labels or a pair (labels, teacher_logits), got {len(y)} parts")
        return y[0], y[1]
    if isinstance(y, dict):
        raise ConfigError("y must be the labels or a pair (labels, teacher_logits), not a dict")
    return y, None


def _weighted_mean(values, sample_weight):
    if isinstance(sample_weight, (tuple, list)):  # Keras gives y = (labels, logits) one weight array per part
        sample_weight = sample_weight[0]
    if sample_weight is not None:
        values = values * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.mean(values)


class DistillationModel(keras.Model):
    """A student trained to match a frozen teacher (see the module docstring). Compile it without ``loss`` and
    with the student's metrics (e.g. ``"accuracy"``); ``call``/``predict`` give the student's logits."""

    def __init__(self, student, teacher, alpha: float = 0.8, temperature: float = 10.0, name: str = "distillation",
                 **kwargs):
        alpha, temperature = _check_settings(alpha, temperature)
        check_pair(student, teacher)
        super().__init__(name=name, **kwargs)
        teacher.trainable = False
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature = alpha, temperature
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.built = True

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """``Model.compile`` without ``loss``: the distillation objective is the model's own."""
        if loss is not None:
            raise ConfigError("a DistillationModel computes its own loss; compile it without loss= (metrics= and "
                              "the rest as usual)")
        super().compile(optimizer=optimizer, **kwargs)

    def objective(self, x, y, student_logits, sample_weight=None):
        """(distillation loss, student cross-entropy) of one batch, reduced as Keras does; the teacher runs only
        when ``y`` carries no cached logits."""
        labels, teacher_logits = _split_targets(y)
        if teacher_logits is None:
            teacher_logits = self.teacher(x, training=False)
        teacher_logits = ops.stop_gradient(teacher_logits)
        total, ce, _ = distillation_losses(labels, student_logits, teacher_logits, self.alpha, self.temperature)
        return _weighted_mean(total, sample_weight), _weighted_mean(ce, sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss, _ = self.objective(x, y, y_pred, sample_weight)
        own = self.student.losses  # the student's ℓ2 and add_loss terms; never the teacher's
        return loss + ops.sum(ops.stack([ops.cast(v, "float32") for v in own])) if own else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = _split_targets(y)
        if isinstance(sample_weight, (tuple, list)):
            sample_weight = sample_weight[0]
        ce = keras.losses.sparse_categorical_crossentropy(labels, ops.cast(y_pred, "float32"), from_logits=True)
        self._student_loss_tracker.update_state(_weighted_mean(ce, sample_weight),
                                                sample_weight=ops.shape(y_pred)[0])
        return super().compute_metrics(x, labels, y_pred, sample_weight)

    # --- persistence: the student's -----------------------------------------------------------------------

    def save(self, filepath, *args, **kwargs):
        """Saves the student alone (a plain Keras 3 model; ``keras_sdd.keras3.strip`` first removes nothing from
        the file, since masks live on variables, but restores the student's own kernel constraints)."""
        return self.student.save(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        return self.student.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        return self.student.load_weights(filepath, *args, **kwargs)

    def get_config(self):
        raise NotImplementedError("a DistillationModel is not serialisable; save() writes its student, and a new "
                                  "DistillationModel(student, teacher, alpha, temperature) rebuilds the pair")


def teacher_logits(teacher, inputs, batch_size: int = 256) -> np.ndarray:
    """The teacher's logits (inference mode) for ``inputs``, float32, in order: carry them as
    ``y = (labels, logits)`` where the training data has no random augmentation."""
    return np.asarray(teacher.predict(inputs, batch_size=int(batch_size), verbose=0), dtype=np.float32)
