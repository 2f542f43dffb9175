"""The assembly seam: from a StudyConfig to data + wrapped model + optimizer + schedule, compiled. No globals.

``assemble`` touches no process state (seeds, threads, determinism belong to ``keras_sdd.process``) and may
run inside a ``tf.distribute`` strategy scope. The study kinds and ``load_round`` build through it, so a study
and its reloaded rounds are the same model. Everything a round loop needs but cannot change lives here.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import tf_keras

from keras_sdd import data, models, seeds
from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError
from keras_sdd.models.params import ParamCount
from keras_sdd.study.round_plan import epochs_of_round, round_targets
from keras_sdd.pruning import methods, tfmot_bridge
from keras_sdd.training import in_graph_train, policy
from keras_sdd.training.retrain import Retrainer, Snapshot, snapshot


#: --mixed_precision -> Keras dtype policy.
POLICIES = {"none": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def build_student(config: StudyConfig, input_shape, num_classes: int, round_index: int = 0) -> tf_keras.Model:
    """The study's plain (unwrapped) model; round k > 0 gives the fresh draw of ``--retrain=scratch``.

    With ``--mixed_precision`` the layers compute in bfloat16/float16 (their variables stay float32) and a
    float32 ``logits_float32`` layer after the logits keeps the loss, metrics and predictions in float32."""
    kwargs = {**config.model_options(), "seed": seeds.derive(config.seed, "init", round_index)}
    policy = POLICIES[config.mixed_precision]
    if policy is None:
        return models.build(config.model, input_shape, num_classes, **kwargs)
    from tf_keras.src.mixed_precision import policy as mixed_policy

    with mixed_policy.policy_scope(policy):
        plain = models.build(config.model, input_shape, num_classes, **kwargs)
    out = tf_keras.layers.Activation("linear", dtype="float32", name="logits_float32")(plain.output)
    return tf_keras.Model(plain.input, out, name=plain.name)


def wrap_student(config: StudyConfig, plain: tf_keras.Model) -> tf_keras.Model:
    """The plain model with tfmot pruning wrappers on the layers in the study's pruning scope."""
    scope = tfmot_bridge.PruneScope(only_dense=config.prune_only_dense, keep_output_dense=config.keep_output_dense)
    wrapped = tfmot_bridge.wrap(plain, scope)
    if not tfmot_bridge.wrappers(wrapped):
        raise ConfigError(f"nothing to prune: {config.model} has no Dense/Conv layer left in scope with "
                          f"--prune_only_dense={config.prune_only_dense} "
                          f"--keep_output_dense={config.keep_output_dense}")
    return wrapped


def reachable_steps(steps_per_epoch: int, steps_per_execution: int, epochs: int) -> List[int]:
    """Optimizer steps after which Keras hands control back to callbacks: every ``steps_per_execution`` steps
    inside an epoch and at each epoch's end (step 0 is the initialisation)."""
    out = {0}
    for e in range(epochs):
        base = e * steps_per_epoch
        out.update(base + j for j in range(steps_per_execution, steps_per_epoch, steps_per_execution))
        out.add(base + steps_per_epoch)
    return sorted(out)


def check_rewind_step(config: StudyConfig, steps_per_epoch: int) -> None:
    """Refuses, before anything runs, a ``--rewind_step`` the dense run never reaches or cannot capture exactly."""
    if config.retrain != "weight_rewind":
        return
    total = steps_per_epoch * config.epochs
    k = config.rewind_step
    if k > total:
        raise ConfigError(f"--rewind_step={k} is beyond the {total} steps of the dense run "
                          f"({config.epochs} epochs × {steps_per_epoch} steps)")
    valid = reachable_steps(steps_per_epoch, config.steps_per_execution, config.epochs)
    if k not in valid:
        i = int(np.searchsorted(valid, k))
        near = sorted({valid[max(i - 1, 0)], valid[min(i, len(valid) - 1)]})
        raise ConfigError(f"--rewind_step={k} cannot be captured exactly with --steps_per_execution="
                          f"{config.steps_per_execution}; nearest valid values: {', '.join(map(str, near))} "
                          "(or use --steps_per_execution=1)")


@dataclass
class Assembly:
    """What one study trains. ``student``: the wrapped model that is pruned, checkpointed and evaluated;
    ``model``: what ``fit`` trains (the student, or a DistillationModel around it)."""

    config: StudyConfig
    bundle: data.DataBundle
    student: tf_keras.Model
    model: tf_keras.Model
    optimizer: tf_keras.optimizers.Optimizer
    schedule: policy.RoundSchedule
    params: ParamCount
    steps_per_epoch: int
    gradual: bool
    teacher_logits: Optional[np.ndarray] = None   # cached per training example, when the pipeline allows it
    in_graph: bool = False                         # ``model`` builds its batches in-graph (--input_pipeline)

    def fresh_init(self, round_index: int) -> Snapshot:
        info = self.bundle.info
        return snapshot(build_student(self.config, info.input_shape, info.num_classes, round_index))

    def retrainer(self) -> Retrainer:
        c = self.config
        return Retrainer(c.retrain, optimizer=self.optimizer, schedule=self.schedule, finetune_lr=c.finetune_lr,
                         rewind={}, fresh_init=self.fresh_init)

    def train_dataset(self, round_index: int, initial_epoch: int, epochs: int):
        """Round k's training stream: order and augmentation a pure function of (seed, k, epoch)."""
        c = self.config
        seed = seeds.derive(c.seed, "shuffle", round_index)
        if self.in_graph:
            return self.bundle.train_executions(c.batch_size, c.steps_per_execution, seed=seed,
                                                initial_epoch=initial_epoch, epochs=epochs)
        return self.bundle.train_dataset(c.batch_size, seed=seed, initial_epoch=initial_epoch, epochs=epochs,
                                         targets_extra=self.teacher_logits)

    def gradual_steps(self, epochs: int) -> int:
        """tfmot's gradual methods prune during the first half of a round, then train at the reached sparsity."""
        return max(1, self.steps_per_epoch * epochs // 2)


def assemble(config: StudyConfig, *, teacher: Optional[tf_keras.Model] = None, strategy=None,
             bundle: Optional[data.DataBundle] = None) -> Assembly:
    """Loads the data (unless ``bundle`` is given), builds and wraps the model, makes the optimizer and schedule,
    adds the ℓ2 penalty and compiles — for distillation from ``teacher`` when one is given. Refuses, before
    anything is written, what only the data can reveal (rewind steps, tfmot frequencies, empty scopes)."""
    c = config
    gradual = methods.is_gradual(c.prune_method)
    if gradual and c.retrain in ("weight_rewind", "scratch"):
        raise ConfigError(f"--prune_method={c.prune_method} prunes during training; it works with "
                          "--retrain=lr_rewind or finetune, not with rewinding or re-initialising weights")
    bundle = bundle or data.load(c.dataset, **c.data_options())
    info = bundle.info
    steps_per_epoch = bundle.steps_per_epoch(c.batch_size)
    check_rewind_step(c, steps_per_epoch)
    if gradual:
        steps = max(1, steps_per_epoch * c.round_epochs // 2)
        if c.prune_frequency > steps:
            raise ConfigError(f"--prune_frequency={c.prune_frequency} exceeds the {steps} steps over which a "
                              "round prunes (the first half of its training): tfmot would prune nothing at "
                              "all; lower it")
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        student = wrap_student(c, build_student(c, info.input_shape, info.num_classes))
        schedule = policy.make_schedule(c, steps_per_epoch)
        optimizer = policy.make_optimizer(c, schedule)
        if c.mixed_precision == "float16":   # float16's narrow range needs the loss scaled
            optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
        policy.add_l2_penalty(student, c.l2, models.prunable_weights(student))
        metrics = [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        cached = None
        if teacher is None:
            model = student
            model.compile(optimizer=optimizer,
                          loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=metrics, steps_per_execution=c.steps_per_execution, jit_compile=c.jit_compile)
        else:
            from keras_sdd import distillation

            model = distillation.DistillationModel(student, teacher, alpha=c.kd_alpha,
                                                   temperature=c.kd_temperature)
            model.compile(optimizer=optimizer, metrics=metrics, steps_per_execution=c.steps_per_execution,
                          jit_compile=c.jit_compile)
            if bundle.augment == "none":  # the teacher's logits are fixed per example: computed once, carried
                cached = distillation.teacher_logits(teacher, bundle.inputs_dataset("train", max(c.batch_size, 256)))
        optimizer.build(student.trainable_variables)
        in_graph = in_graph_train.resolve(c.input_pipeline, strategy)
        if in_graph:
            in_graph_train.use_in_graph_batches(model, bundle.in_graph_batches(c.batch_size, cached))
    return Assembly(c, bundle, student, model, optimizer, schedule, models.count_params(student),
                    steps_per_epoch, gradual, cached, in_graph)


__all__ = ["Assembly", "assemble", "round_targets", "build_student", "wrap_student", "check_rewind_step",
           "reachable_steps", "epochs_of_round"]
