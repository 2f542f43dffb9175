"""Knowledge distillation for pruned students: ``DistillationModel`` with its own ``train_step``/``test_step``.

Seed paper 1's antidote to sparse double descent (Quétu & Milovanović 2023): every IMP round trains the student
with

    loss = (1 − α)·CE(y, student) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ))

(sparse labels, logits, mean over the batch; Hinton et al.'s τ²-scaled form; α = 0.8, τ = 10 as in the authors'
code). ``keras.distillation`` exists only in Keras 3 and tfmot needs Keras 2, so this is our own, on ``tf_keras``:

- The teacher runs in inference mode (``training=False``: BatchNorm statistics and dropout frozen), is made
  non-trainable (its ``trainable`` flag is set to False) and receives no gradient. Only the student's variables
  are updated; the student's own losses (``student.losses``, e.g. the ℓ2 penalty of ``--l2``) join the objective.
- Compiled metrics describe the student's logits against the labels. ``fit``/``evaluate`` report the
  distillation loss as ``loss`` and the student's cross-entropy as ``student_loss`` (both per-example means over
  the data seen, partial last batch included). ``call``/``predict`` return the student's logits.
- **Cached teacher logits**: where the training pipeline has no random augmentation the teacher's logits are a
  fixed function of the example, so they are computed once (``teacher_logits``) and carried in the dataset as
  ``y = (labels, teacher_logits)`` (a 2-tuple; ``DataBundle.train_dataset(..., targets_extra=logits)`` and
  ``cached_train_dataset`` build it). A plain label tensor ``y`` makes the teacher run on the batch instead.
- Persistence is the student's: ``save``/``export``/``save_weights``/``load_weights`` act on the student alone
  (the deployable model; the teacher is fixed and supplied again at construction). ``get_config`` raises: the
  pair itself is not serialisable. ``tf.train.Checkpoint(model=distillation_model)`` tracks both by attribute.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import math
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.keras_line import require_keras2_model
from keras_sdd.models.params import walk_layers


def _shape(model: tf_keras.Model, what: str, role: str):
    try:
        return getattr(model, what)
    except (AttributeError, RuntimeError, ValueError) as e:
        raise ConfigError(f"the {role} has no defined {what.replace('_', ' ')}: build it (give it an input shape) "
                          f"before distilling ({e})") from None


def _dims(shape) -> tuple:
    return tuple(shape[1:]) if isinstance(shape, tuple) else tuple(tuple(s[1:]) for s in shape)


def _compatible(a, b) -> bool:
    """Shapes equal, a dimension left ``None`` on either side matching any size."""
    if isinstance(a, tuple) and a and isinstance(a[0], tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_compatible(x, y) for x, y in zip(a, b))
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _has_pruning_wrappers(model: tf_keras.Model) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return any(isinstance(layer, pruning_wrapper.PruneLowMagnitude) for _, layer in walk_layers(model))


def check_pair(student: tf_keras.Model, teacher: tf_keras.Model) -> None:
    """Refuses a teacher whose input shape or number of classes differs from the student's (architectures may
    differ), a teacher that is the student, and a teacher still on tfmot pruning wrappers (their per-call
    ``weight *= mask`` would write into the frozen teacher: strip it first, ``tfmot_bridge.strip``)."""
    require_keras2_model(student, "DistillationModel")
    require_keras2_model(teacher, "DistillationModel")
    if teacher is student:
        raise ConfigError("the teacher is the student itself; distil from a separate model (e.g. a clone)")
    s_in, t_in = _dims(_shape(student, "input_shape", "student")), _dims(_shape(teacher, "input_shape", "teacher"))
    if not _compatible(t_in, s_in):
        raise ConfigError(f"the teacher takes inputs of shape {t_in} but the student takes {s_in}")
    s_out = _dims(_shape(student, "output_shape", "student"))
    t_out = _dims(_shape(teacher, "output_shape", "teacher"))
    if not _compatible(t_out, s_out):
        raise ConfigError(f"the teacher predicts {t_out[-1] if t_out else t_out} classes (outputs {t_out}) but the "
                          f"student predicts {s_out[-1] if s_out else s_out} (outputs {s_out})")
    if _has_pruning_wrappers(teacher):
        raise ConfigError("the teacher has tfmot pruning wrappers; pass keras_sdd.pruning.tfmot_bridge.strip(teacher)")


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


def distillation_losses(labels, student_logits, teacher_logits, alpha: float, temperature: float):
    """Per-example (total, cross-entropy, KL) of the distillation objective, in float32.

    KL(p_t ‖ p_s) with p = softmax(logits/τ), computed from log-softmaxes (stable for large logits)."""
    s = tf.cast(student_logits, tf.float32)
    t = tf.cast(teacher_logits, tf.float32)
    ce = tf_keras.losses.sparse_categorical_crossentropy(labels, s, from_logits=True)
    log_p_t = tf.nn.log_softmax(t / temperature, axis=-1)
    log_p_s = tf.nn.log_softmax(s / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    total = (1.0 - alpha) * ce + (alpha * temperature ** 2) * kl
    return total, ce, kl


class DistillationModel(tf_keras.Model):
    """A student trained to match a frozen teacher (see the module docstring).

    ``student``: the model trained (plain or on tfmot pruning wrappers); ``teacher``: any built model with the
    student's input shape and number of classes, made non-trainable here. Compile it without ``loss`` (the
    objective is its own) and with the student's metrics, e.g. ``SparseCategoricalAccuracy``.
    """

    def __init__(self, student: tf_keras.Model, teacher: tf_keras.Model, alpha: float = 0.8,
                 temperature: float = 10.0, name: str = "distillation", **kwargs):
        alpha, temperature = _check_settings(alpha, temperature)
        check_pair(student, teacher)
        super().__init__(name=name, **kwargs)
        teacher.trainable = False
        self.student, self.teacher = student, teacher   # tracked by attribute: equal model names do not clash
        self.alpha, self.temperature = alpha, temperature
        self._loss_tracker = tf_keras.metrics.Mean(name="loss")
        self._student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")
        self.built = True   # both parts are built; lets summary()/weights work before the first batch

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """``Model.compile`` without ``loss``: the distillation objective is computed by the model itself."""
        if loss is not None:
            raise ConfigError("a DistillationModel computes its own loss; compile it without loss= (metrics= and "
                              "the rest as usual)")
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        compiled = self.compiled_metrics.metrics if getattr(self, "compiled_metrics", None) is not None else []
        return [self._loss_tracker, self._student_loss_tracker, *compiled]

    @staticmethod
    def split_targets(y) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
        """``y`` is the labels, or the 2-tuple ``(labels, teacher_logits)`` when the teacher's logits are cached."""
        if isinstance(y, (tuple, list)):
            if len(y) != 2:
                raise ConfigError(f"y must be the labels or a pair (labels, teacher_logits), got {len(y)} parts")
            return y[0], y[1]
        if isinstance(y, dict):
            raise ConfigError("y must be the labels or a pair (labels, teacher_logits), not a dict")
        return y, None

    def compute_objective(self, x, y, sample_weight=None, training: bool = False):
        """(labels, student logits, distillation loss, student cross-entropy) of one batch.

        Losses are reduced as Keras does (Σ wᵢ·lᵢ / batch size; the plain mean without weights). The teacher runs
        only when ``y`` carries no cached logits."""
        labels, teacher_logits = self.split_targets(y)
        if teacher_logits is None:
            teacher_logits = self.teacher(x, training=False)
        teacher_logits = tf.stop_gradient(teacher_logits)
        student_logits = self.student(x, training=training)
        total, ce, _ = distillation_losses(labels, student_logits, teacher_logits, self.alpha, self.temperature)
        if sample_weight is not None:
            w = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
            total, ce = total * w, ce * w
        return labels, student_logits, tf.reduce_mean(total), tf.reduce_mean(ce)

    def _record(self, labels, student_logits, loss, student_loss, sample_weight):
        n = tf.cast(tf.shape(student_logits)[0], tf.float32)   # batch-size weighted: a dataset-wide mean
        self._loss_tracker.update_state(loss, sample_weight=n)
        self._student_loss_tracker.update_state(student_loss, sample_weight=n)
        self.compiled_metrics.update_state(labels, student_logits, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            labels, student_logits, loss, student_loss = self.compute_objective(x, y, sample_weight, training=True)
            objective = loss + tf.add_n(self.student.losses) if self.student.losses else loss
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:   # gradients are summed over replicas: as Keras' compiled loss, divide by their number
                objective = objective / replicas
        # minimize() handles a LossScaleOptimizer's scaling (--mixed_precision=float16) and legacy optimizers
        self.optimizer.minimize(objective, self.student.trainable_variables, tape=tape)
        return self._record(labels, student_logits, loss, student_loss, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        labels, student_logits, loss, student_loss = self.compute_objective(x, y, sample_weight, training=False)
        return self._record(labels, student_logits, loss, student_loss, sample_weight)

    # --- persistence: the student's -----------------------------------------------------------------------

    def save(self, filepath, *args, **kwargs):
        """Saves the student alone (the model one deploys; ``tf_keras.models.load_model`` reads it back). A
        student on pruning wrappers is saved with them: ``tfmot_bridge.strip`` it first for a plain model."""
        return self.student.save(filepath, *args, **kwargs)

    def export(self, filepath, *args, **kwargs):
        """Exports the student alone (see ``save``)."""
        return self.student.export(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        """Saves the student's weights alone (the teacher is fixed and given again at construction)."""
        return self.student.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        """Loads weights written by ``save_weights`` (or by the student's own) into the student."""
        return self.student.load_weights(filepath, *args, **kwargs)

    def get_config(self):
        raise NotImplementedError("a DistillationModel is not serialisable; save() writes its student, and a new "
                                  "DistillationModel(student, teacher, alpha, temperature) rebuilds the pair")


def teacher_logits(teacher: tf_keras.Model, inputs, batch_size: int = 256) -> np.ndarray:
    """The teacher's logits (inference mode) for ``inputs`` — an array, or a dataset of input batches (or of
    ``(x, y)`` batches; ``y`` is ignored) — in stored order, as float32, for carrying in a training pipeline
    without random augmentation (``cached_train_dataset``)."""
    if isinstance(inputs, tf.data.Dataset):
        out = teacher.predict(inputs, verbose=0)
    else:
        out = teacher.predict(np.asarray(inputs), batch_size=int(batch_size), verbose=0)
    return np.asarray(out, dtype=np.float32)


def cached_train_dataset(bundle, teacher: tf_keras.Model, batch_size: int, *, seed: int, initial_epoch: int = 0,
                         epochs: Optional[int] = None, logits: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """``bundle.train_dataset`` with the teacher's logits carried: batches ``(x, (labels, teacher_logits))``.

    ``logits``: precomputed ``teacher_logits`` of the training split in stored order (computed here when None;
    pass them to reuse one computation over rounds). Refused (ConfigError) when the bundle augments randomly:
    the teacher must then see each augmented batch, so train on the plain ``(x, y)`` stream instead."""
    if bundle.augment != "none":
        raise ConfigError(f"teacher logits cannot be cached with augment={bundle.augment!r}: the teacher must see "
                          "each augmented batch; train on plain (x, y) batches (bundle.train_dataset) instead")
    if logits is None:
        logits = teacher_logits(teacher, bundle.inputs_dataset("train", max(int(batch_size), 256)))
    return bundle.train_dataset(batch_size, seed=seed, initial_epoch=initial_epoch, epochs=epochs,
                                targets_extra=logits)


__all__ = ["DistillationModel", "distillation_losses", "teacher_logits", "cached_train_dataset", "check_pair"]
