"""Schedules: the fixed-mask schedule never prunes; tfmot's gradual ones reach their target in a short fit."""
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from keras_sdd.errors import ConfigError
from keras_sdd.pruning import masks as M
from keras_sdd.pruning import tfmot_bridge as B
from keras_sdd.pruning.methods import PRUNING_METHODS
from keras_sdd.pruning.schedules import FixedMaskSchedule, gradual_schedule

L = tf_keras.layers


def mlp(seed=0):
    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential([L.Dense(16, activation="relu", input_shape=(10,), name="hidden"),
                                L.Dense(7, name="hidden2"), L.Dense(3, name="logits")])


def fit_steps(model, steps, callbacks=()):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8 * steps, 10)).astype(np.float32)
    y = rng.integers(0, 3, 8 * steps)
    model.compile(tf_keras.optimizers.SGD(0.05), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=list(callbacks))


def test_fixed_mask_schedule():
    schedule = FixedMaskSchedule()
    should, sparsity = schedule(tf.constant(100, tf.int64))
    assert not bool(should) and float(sparsity) == 0.0
    assert isinstance(FixedMaskSchedule.from_config(schedule.get_config()["config"]), FixedMaskSchedule)
    wrapper = PruneLowMagnitude(L.Dense(3), pruning_schedule=schedule)
    clone = PruneLowMagnitude.from_config(wrapper.get_config())  # no custom_object_scope needed
    assert isinstance(clone.pruning_schedule, FixedMaskSchedule)


def test_fixed_mask_schedule_keeps_all_ones_masks_in_training():
    model = B.wrap(mlp())
    fit_steps(model, 6, [tfmot.sparsity.keras.UpdatePruningStep()])
    assert B.sparsity_report(model).pruned == 0


@pytest.mark.parametrize("kind", ["constant", "polynomial"])
def test_gradual_schedules_reach_target_per_layer(kind):
    target = 0.6
    schedule = gradual_schedule(kind, target, initial_sparsity=0.1, end_step=8, frequency=2)
    assert isinstance(schedule, {"constant": tfmot.sparsity.keras.ConstantSparsity,
                                 "polynomial": tfmot.sparsity.keras.PolynomialDecay}[kind])
    model = B.wrap(mlp(), schedule=schedule)
    fit_steps(model, 8, [tfmot.sparsity.keras.UpdatePruningStep()])
    masks = B.get_masks(model)
    for key, mask in masks.items():
        pruned = mask.size - np.count_nonzero(mask)
        assert abs(pruned - target * mask.size) <= 1, key
    # the same through the registry's gradual methods
    method = PRUNING_METHODS.get(f"tfmot_{kind}")
    assert method.gradual and isinstance(method.schedule(target, end_step=8, frequency=2), type(schedule))


def test_stock_prune_low_magnitude_constant_sparsity():
    """The plain tfmot flow (user-wrapped model, UpdatePruningStep) for reference: per-layer exact target."""
    model = tfmot.sparsity.keras.prune_low_magnitude(
        mlp(), pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=3))
    fit_steps(model, 6, [tfmot.sparsity.keras.UpdatePruningStep()])
    report = B.sparsity_report(model)
    sizes = {w.layer.name: int(np.prod(w.layer.kernel.shape)) for w in B.wrappers(model)}
    for layer, s in report.per_layer.items():
        assert s == M.count_for(0.5, sizes[layer]) / sizes[layer]


def test_polynomial_off_grid_end_step_warns(caplog):
    with caplog.at_level(logging.WARNING):
        gradual_schedule("polynomial", 0.5, end_step=10, frequency=3)
    assert "below target sparsity" in caplog.text


def test_gradual_schedule_refusals():
    with pytest.raises(ConfigError, match="never prune"):
        gradual_schedule("constant", 0.5, end_step=50, frequency=100)
    with pytest.raises(ConfigError, match="never prune"):
        gradual_schedule("polynomial", 0.5, begin_step=10, end_step=20, frequency=11)
    gradual_schedule("constant", 0.5, begin_step=10, end_step=20, frequency=10)
    for kwargs in (dict(end_step=0), dict(begin_step=5, end_step=5), dict(end_step=10, frequency=0),
                   dict(end_step=10, begin_step=-1)):
        with pytest.raises(ConfigError):
            gradual_schedule("constant", 0.5, **kwargs)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError):
            gradual_schedule("constant", bad, end_step=10, frequency=1)
        with pytest.raises(ConfigError):
            gradual_schedule("polynomial", 0.5, initial_sparsity=bad, end_step=10, frequency=1)
    with pytest.raises(ConfigError):
        gradual_schedule("polynomial", 0.3, initial_sparsity=0.5, end_step=10, frequency=1)
    with pytest.raises(ConfigError):
        gradual_schedule("cubic", 0.5, end_step=10)
