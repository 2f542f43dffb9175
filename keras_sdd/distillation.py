"""Knowledge distillation for pruned students: ``DistillationModel`` with its own ``train_step``/``test_step``.

Seed paper 1's antidote to sparse double descent: every IMP round trains the student with

    loss = (1 − α)·CE(y, student) + α·τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ))

(Hinton et al.'s τ²-scaled form; α = 0.8, τ = 10 as in the authors' code). ``keras.distillation`` exists only in
Keras 3 and tfmot needs Keras 2, so this is our own, on ``tf_keras``:

- The teacher runs in inference mode (``training=False``: BatchNorm statistics and dropout frozen), is never
  trainable, and receives no gradient. Only the student's variables are updated; the student's own losses
  (e.g. the ℓ2 penalty of ``--l2``) are added to the objective.
- Compiled metrics describe the student. ``fit``/``evaluate`` report the distillation loss as ``loss`` and the
  student's cross-entropy as ``student_loss``. ``call``/``predict`` return the student's logits.
- **Cached teacher logits**: where the training pipeline has no random augmentation the teacher's logits are a
  fixed function of the example, so they are computed once (``teacher_logits``) and carried in the dataset as
  ``y = (labels, teacher_logits)``; a plain label tensor ``y`` makes the teacher run on the batch instead.
- ``save``/``export`` write the student alone (the deployable model); the pair itself is not serialisable.
"""
from __future__ import annotations

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from keras_sdd.errors import ConfigError


def _output_classes(model: tf_keras.Model) -> int:
    return int(model.output_shape[-1])


def _input_shape(model: tf_keras.Model) -> tuple:
    return tuple(model.input_shape[1:])


def check_pair(student: tf_keras.Model, teacher: tf_keras.Model) -> None:
    """Refuses a teacher whose input shape or number of classes differs from the student's."""
    if _input_shape(teacher) != _input_shape(student):
        raise ConfigError(f"the teacher takes inputs of shape {_input_shape(teacher)} but the student's data has "
                          f"shape {_input_shape(student)}")
    if _output_classes(teacher) != _output_classes(student):
        raise ConfigError(f"the teacher predicts {_output_classes(teacher)} classes but the student's data has "
                          f"{_output_classes(student)}")


def distillation_losses(labels, student_logits, teacher_logits, alpha: float, temperature: float):
    """Per-example (total, cross-entropy, KL) of the distillation objective, in float32."""
    s = tf.cast(student_logits, tf.float32)
    t = tf.cast(teacher_logits, tf.float32)
    ce = tf_keras.losses.sparse_categorical_crossentropy(labels, s, from_logits=True)
    log_p_t = tf.nn.log_softmax(t / temperature, axis=-1)
    log_p_s = tf.nn.log_softmax(s / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    total = (1.0 - alpha) * ce + alpha * temperature ** 2 * kl
    return total, ce, kl


class DistillationModel(tf_keras.Model):
    """A student trained to match a frozen teacher; see the module docstring."""

    def __init__(self, student: tf_keras.Model, teacher: tf_keras.Model, alpha: float = 0.8,
                 temperature: float = 10.0, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must lie in [0, 1], got {alpha!r}")
        if not float(temperature) > 0.0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        check_pair(student, teacher)
        teacher.trainable = False
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature = float(alpha), float(temperature)
        self._loss_tracker = tf_keras.metrics.Mean(name="loss")
        self._student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        compiled = self.compiled_metrics.metrics if getattr(self, "compiled_metrics", None) is not None else []
        return [self._loss_tracker, self._student_loss_tracker, *compiled]

    @staticmethod
    def split_targets(y) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
        """``y`` is the labels, or ``(labels, teacher_logits)`` when the teacher's logits are cached."""
        if isinstance(y, (tuple, list)):
            if len(y) != 2:
                raise ValueError("y must be the labels or a pair (labels, teacher_logits)")
            return y[0], y[1]
        return y, None

    def _objective(self, x, y, sample_weight, training: bool):
        labels, teacher_logits = self.split_targets(y)
        if teacher_logits is None:
            teacher_logits = self.teacher(x, training=False)
        teacher_logits = tf.stop_gradient(teacher_logits)
        student_logits = self.student(x, training=training)
        total, ce, _ = distillation_losses(labels, student_logits, teacher_logits, self.alpha, self.temperature)
        if sample_weight is not None:
            w = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
            loss, student_loss = (tf.reduce_sum(total * w) / tf.reduce_sum(w),
                                  tf.reduce_sum(ce * w) / tf.reduce_sum(w))
        else:
            loss, student_loss = tf.reduce_mean(total), tf.reduce_mean(ce)
        return labels, student_logits, loss, student_loss

    def _record(self, labels, student_logits, loss, student_loss, sample_weight):
        self._loss_tracker.update_state(loss)
        self._student_loss_tracker.update_state(student_loss)
        self.compiled_metrics.update_state(labels, student_logits, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            labels, student_logits, loss, student_loss = self._objective(x, y, sample_weight, training=True)
            objective = loss + tf.add_n(self.student.losses) if self.student.losses else loss
            scaled = self.optimizer.get_scaled_loss(objective) if hasattr(self.optimizer, "get_scaled_loss") \
                else objective
        grads = tape.gradient(scaled, variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._record(labels, student_logits, loss, student_loss, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        labels, student_logits, loss, student_loss = self._objective(x, y, sample_weight, training=False)
        return self._record(labels, student_logits, loss, student_loss, sample_weight)

    def save(self, filepath, *args, **kwargs):
        """Saves the student alone (the model one deploys); the teacher is not part of the result."""
        return self.student.save(filepath, *args, **kwargs)

    def export(self, filepath, *args, **kwargs):
        """Exports the student alone (see ``save``)."""
        return self.student.export(filepath, *args, **kwargs)

    def get_config(self):
        raise NotImplementedError("a DistillationModel is not serialisable; save() writes its student")


def teacher_logits(teacher: tf_keras.Model, inputs, batch_size: int = 256) -> np.ndarray:
    """The teacher's logits (inference mode) for ``inputs`` — an array, or a dataset of input batches in stored
    order — as float32, for carrying in a training pipeline without random augmentation."""
    if isinstance(inputs, tf.data.Dataset):
        out = teacher.predict(inputs, verbose=0)
    else:
        out = teacher.predict(np.asarray(inputs), batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float32)


def cached_train_dataset(bundle, teacher: tf_keras.Model, batch_size: int, *, seed: int, initial_epoch: int = 0,
                         epochs: Optional[int] = None, logits: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """The bundle's training stream with the teacher's logits carried as ``y = (labels, teacher_logits)``.

    Only valid without random augmentation (the logits are those of the stored, un-augmented examples)."""
    if bundle.augment != "none":
        raise ConfigError(f"teacher logits cannot be cached with augment={bundle.augment!r}: the teacher must see "
                          "each augmented batch; train on plain (x, y) batches instead")
    if logits is None:
        logits = teacher_logits(teacher, bundle.inputs_dataset("train", max(int(batch_size), 256)))
    return bundle.train_dataset(batch_size, seed=seed, initial_epoch=initial_epoch, epochs=epochs,
                                targets_extra=logits)


__all__ = ["DistillationModel", "distillation_losses", "teacher_logits", "cached_train_dataset", "check_pair"]
