"""FixedMaskPruneLowMagnitude: masks the forward pass, skips tfmot's per-step bookkeeping, stays a tfmot wrapper."""
import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude
import tf_keras

from keras_sdd import models
from keras_sdd.pruning import schedules, tfmot_bridge
from keras_sdd.pruning.fixed_mask_wrapper import FixedMaskPruneLowMagnitude


def _model():
    model = tfmot_bridge.wrap(models.build("fcn", (5,), 3, width=8, depth=1, seed=0))
    model.compile(tf_keras.optimizers.SGD(0.1), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 5)).astype("float32"), rng.integers(0, 3, 32)


def test_is_a_tfmot_wrapper_and_strips():
    model = _model()
    ws = tfmot_bridge.wrappers(model)
    assert ws and all(isinstance(w, FixedMaskPruneLowMagnitude) for w in ws)
    assert all(isinstance(w, PruneLowMagnitude) for w in ws)
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)


def test_forward_uses_masked_weights_and_skips_step_bookkeeping():
    model = _model()
    x, y = _data()
    tfmot_bridge.prune(model, 0.5)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)      # no UpdatePruningStep callback needed
    assert all(int(w.pruning_step.numpy()) == 0 for w in tfmot_bridge.wrappers(model))
    # The optimizer moved masked weights off zero; the next forward pass must not see them.
    masks = tfmot_bridge.get_masks(model)
    assert any(np.any(tfmot_bridge.get_weights(model)[k][m == 0] != 0) for k, m in masks.items())
    out = model.predict(x, verbose=0)
    plain = models.build("fcn", (5,), 3, width=8, depth=1, seed=0)
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.get_weights():
            weights = inner.get_weights()
            key = f"{inner.name}/kernel"
            weights[0] = weights[0] * masks[key]
            plain.get_layer(inner.name).set_weights(weights)
    np.testing.assert_allclose(out, plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_other_schedule_takes_the_stock_path():
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    sched = schedules.gradual_schedule("constant", 0.5, begin_step=0, end_step=8, frequency=2)
    tfmot_bridge.set_schedule(model, sched)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    assert all(int(w.pruning_step.numpy()) > 0 for w in tfmot_bridge.wrappers(model))
    for key, m in tfmot_bridge.get_masks(model).items():
        assert abs((m == 0).mean() - 0.5) <= 1.0 / m.size        # tfmot pruned each layer to its target
