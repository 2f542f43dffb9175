"""A Keras train function that builds its batches inside the graph, for ``model.fit`` over in-memory data.

Why: Keras' train function pulls every batch from a tf.data iterator. On a CPU that hand-over costs about 0.6 ms
a step — as long as the whole step of a small model (the quickstart's MLP: ~100 ms an epoch through tf.data,
~60 ms in-graph). Here ``fit`` reads one small element per compiled call (seed, epoch and first step,
``DataBundle.train_executions``); the call draws the epoch's visiting plan once, then gathers, augments and
normalises each of its batches itself.
The batches are exactly those of ``DataBundle.train_dataset``, so the trained weights are bit-identical; ``fit``,
its callbacks, validation and logs are unchanged.

The model keeps its own ``train_step`` (the student's, or ``DistillationModel``'s) and its ``jit_compile``; only
``make_train_function`` is replaced, on the instance, so ``compile`` and forced rebuilds (tfmot's gradual
schedules) make the in-graph function again. One device only: under a ``tf.distribute`` strategy use tf.data.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras
from tf_keras.src.engine.training import _minimum_control_deps  # what Keras' own train function orders after

__all__ = ["resolve", "use_in_graph_batches"]


def resolve(choice: str, strategy=None) -> bool:
    """Whether ``--input_pipeline=choice`` means in-graph batches: 'auto' picks them with no distribution
    strategy on a machine without GPU or TPU (with an accelerator, tf.data's prefetching overlaps the host's
    batch making with the device's step, which in-graph batches would serialise)."""
    if choice == "tf_data":
        return False
    if choice not in ("auto", "in_graph"):
        raise ValueError(f"unknown input pipeline {choice!r}")
    if strategy is not None:   # the train step must run through strategy.run, on tf.data's distributed batches
        if choice == "in_graph":
            raise ValueError("in-graph batches serve one device; under a tf.distribute strategy feed tf.data")
        return False
    if choice == "in_graph":
        return True
    return not (tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


def use_in_graph_batches(model: tf_keras.Model, batches) -> None:
    """From now on ``model.fit`` expects the stream of ``DataBundle.train_executions`` (built with the model's
    ``steps_per_execution``); ``batches``, ``DataBundle.in_graph_batches``, builds each call's batches."""
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        raise ValueError("in-graph batches serve one device; under a tf.distribute strategy feed tf.data")

    def make_train_function(force: bool = False):
        if model.train_function is not None and not force:
            return model.train_function

        def run_step(data):
            outputs = model.train_step(data)
            with tf.control_dependencies(_minimum_control_deps(outputs)):
                model._train_counter.assign_add(1)  # pylint: disable=protected-access
            return outputs

        if model.jit_compile:
            run_step = tf.function(run_step, jit_compile=True, reduce_retracing=True)

        def train_function(iterator):
            element = next(iterator)
            steps = model._steps_per_execution  # pylint: disable=protected-access
            tf.debugging.assert_equal(  # a stream made for other executions would silently train on other batches
                tf.cast(steps, tf.int64), element["length"],
                message="the in-graph stream was built for another steps_per_execution than the model's")
            plan, start = batches.plan(element), element["start"]
            outputs = run_step(batches.batch(plan, start))   # defines the loop's outputs for AutoGraph
            for i in tf.range(1, steps):
                outputs = run_step(batches.batch(plan, start + tf.cast(i, tf.int64)))
            return outputs

        fn = train_function if model.run_eagerly else tf.function(train_function, reduce_retracing=True)
        model.train_tf_function = fn
        model.train_function = fn
        return fn

    model.make_train_function = make_train_function
    model.train_function = None

