"""keras_sdd.keras3: IMP on plain Keras 3 models, on this process's backend and, in children, on TensorFlow and JAX.

The children run ``keras3_user_script.py`` (a user's script: ``import keras``, ``model.fit``, the callbacks) and
then load its saved ``.keras`` file in a fresh process that never imports keras_sdd.
"""
import json

import keras
import numpy as np
import pytest

from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import (IterativeMagnitudePruning, PruneScope, RewindCapture, SparsityLogger, restore,
                              snapshot, strip)
from keras_sdd.keras3 import kernel_masks as km
from keras_sdd.pruning.masks import count_for, global_magnitude_masks, layerwise_magnitude_masks, random_masks

TARGETS = (0.2, 0.36, 0.488)


def _mlp(constraint=None, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu", kernel_constraint=constraint),
                             keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])


def _data(n=64, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.integers(0, k, n)


def _zeros(model):
    return {k: np.asarray(v) == 0 for k, v in km.prunable_kernels(model).items()}


def _prune_once(model, epoch=1, **kwargs):
    """Runs the callback's hooks by hand (as fit would) and returns it."""
    imp = IterativeMagnitudePruning(verbose=0, **kwargs)
    imp.set_model(model)
    imp.on_train_begin()
    imp.on_epoch_begin(epoch)
    return imp


@pytest.mark.parametrize("method,select", [
    ("global_magnitude", lambda w, m, t: global_magnitude_masks(w, m, t)),
    ("layerwise_magnitude", lambda w, m, t: layerwise_magnitude_masks(w, m, t)),
    ("random", lambda w, m, t: random_masks(w, m, t, seed=7 + 1)),
])
def test_pruning_uses_the_shared_mask_selection(method, select):
    model = _mlp()
    kernels = km.prunable_kernels(model)
    weights = {k: np.asarray(v).copy() for k, v in kernels.items()}
    ones = {k: np.ones_like(w) for k, w in weights.items()}
    _prune_once(model, method=method, seed=7)
    expected = select(weights, ones, 0.2)
    for key, kernel in kernels.items():
        np.testing.assert_array_equal(np.asarray(kernel) == 0, expected[key] == 0, err_msg=key)
        np.testing.assert_array_equal(np.asarray(kernel)[expected[key] != 0], weights[key][expected[key] != 0])
    total = sum(w.size for w in weights.values())
    assert sum(int((np.asarray(k) == 0).sum()) for k in kernels.values()) == count_for(0.2, total)
    if method == "global_magnitude":  # one threshold over all kernels
        pruned = np.concatenate([np.abs(weights[k])[expected[k] == 0] for k in weights])
        kept = np.concatenate([np.abs(weights[k])[expected[k] != 0] for k in weights])
        assert pruned.max() <= kept.min()


def test_fit_keeps_pruned_weights_zero_with_steps_per_execution_and_chains_user_constraint():
    model = _mlp(constraint=keras.constraints.NonNeg())
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=3)
    x, y = _data()
    imp = IterativeMagnitudePruning(prune_epochs=[1, 2, 3], verbose=0)
    zeros, masks = [], []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            zeros.append(_zeros(self.model))
            masks.append(km.get_masks(km.prunable_kernels(self.model)))

    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[imp, SparsityLogger(), Watch()])
    total = sum(z.size for z in zeros[0].values())
    expected = [0.0] + [count_for(t, total) / total for t in TARGETS] + [count_for(TARGETS[-1], total) / total]
    assert [imp.history[e] for e in range(5)] == pytest.approx(expected, abs=1e-12)
    assert history.history["sparsity"] == pytest.approx(expected, abs=1e-12)
    for epoch_masks, epoch_zeros in zip(masks, zeros):  # every pruned weight is exactly 0 at every epoch end
        assert all(np.all(epoch_zeros[k][epoch_masks[k] == 0]) for k in epoch_masks)
    for before, after in zip(masks, masks[1:]):  # and stays pruned
        assert all(np.all(after[k][before[k] == 0] == 0) for k in before)
    assert any(np.any(z & (m != 0)) for z, m in ((zeros[0][k], masks[0][k]) for k in masks[0]))  # NonNeg zeros
    assert np.asarray(model.layers[0].kernel).min() >= 0.0  # the user's NonNeg still applies
    assert isinstance(model.layers[0].kernel.constraint, km.KernelMask)


def test_functional_and_subclassed_models_and_conv_attention_kernels():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Reshape((36, 4))(x)
    x = keras.layers.Conv1D(4, 3, padding="same")(x)
    x = keras.layers.MultiHeadAttention(2, 4)(x, x)
    x = keras.layers.Reshape((6, 6, 1, 4))(x)
    x = keras.layers.Conv3D(2, (1, 1, 1))(x)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    functional = keras.Model(inputs, outputs)
    keys = list(km.prunable_kernels(functional))
    for part in ("conv2d", "depthwise_conv2d", "conv1d", "query", "key", "value", "attention_output", "conv3d",
                 "dense"):
        assert any(part in k.split("/")[-2] for k in keys), (part, keys)
    assert list(km.prunable_kernels(functional, PruneScope(only_dense=True))) == \
        [k for k in keys if k.split("/")[-2] in ("attention_output", "value", "key", "query") or "dense" in k]

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = keras.Sequential([keras.layers.Dense(8, activation="relu")])
            self.head = keras.layers.Dense(3)

        def call(self, x):
            return self.head(self.block(x))

    sub = Sub()
    sub(np.zeros((1, 12), "float32"))  # builds the sublayers (build() alone would not)
    assert len(km.prunable_kernels(sub)) == 2
    for model in (functional, sub):
        x = np.random.default_rng(0).normal(size=(16,) + tuple(
            (6, 6, 2) if model is functional else (12,))).astype("float32")
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        imp = IterativeMagnitudePruning(prune_epochs=[1], verbose=0)
        model.fit(x, np.arange(16) % 3, batch_size=8, epochs=2, verbose=0, callbacks=[imp])
        total = sum(int(np.prod(v.shape)) for v in km.prunable_kernels(model).values())
        assert imp.history[1] == count_for(0.2, total) / total
        assert sum(int(z.sum()) for z in _zeros(model).values()) == count_for(0.2, total)


def test_loaded_model_resumes_from_its_zeros_and_strip_restores_constraints(tmp_path):
    model = _mlp(constraint=keras.constraints.MaxNorm(2.0))
    _prune_once(model)
    path = tmp_path / "pruned.keras"
    plain = strip(model, path)
    assert plain is model and isinstance(model.layers[0].kernel.constraint, keras.constraints.MaxNorm)
    loaded = keras.saving.load_model(path)
    assert all(not isinstance(v.constraint, km.KernelMask) for v in km.prunable_kernels(loaded).values())
    for zero, kernel in zip(_zeros(model).values(), km.prunable_kernels(loaded).values(), strict=True):
        np.testing.assert_array_equal(zero, np.asarray(kernel) == 0)  # (paths differ: names are made unique)
    total = sum(z.size for z in _zeros(loaded).values())
    imp = _prune_once(loaded, epoch=2)  # the masks come back from the exact zeros: 20 % -> 36 %
    assert imp.history[2] == count_for(0.36, total) / total
    assert sum(int(z.sum()) for z in _zeros(loaded).values()) == count_for(0.36, total)


def test_rewind_restores_the_snapshot_under_the_new_masks():
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    capture = RewindCapture(step=2)
    imp = IterativeMagnitudePruning(prune_epochs=[1], rewind=capture, verbose=0)
    seen = {}

    class AfterPruning(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                seen["weights"] = snapshot(self.model)

    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[capture, imp, AfterPruning()])
    assert capture.captured_at == 2
    kernels = km.prunable_kernels(model)
    masks = km.get_masks(kernels)
    index = {id(v): i for i, v in enumerate(model.weights)}
    for key, kernel in kernels.items():
        i = index[id(kernel)]
        np.testing.assert_array_equal(seen["weights"][i], capture.weights[i] * masks[key])
    bias = [i for i, v in enumerate(model.weights) if v.name == "bias"][0]
    np.testing.assert_array_equal(seen["weights"][bias], capture.weights[bias])
    restore(model, capture.weights)  # restore masks as well
    assert all(np.all(np.asarray(kernels[k])[masks[k] == 0] == 0) for k in kernels)
    with pytest.raises(ConfigError, match="not captured"):
        _prune_once(_mlp(), rewind=RewindCapture(step=5))


def test_learning_rate_restart_zeroes_iterations_and_slots_but_keeps_the_rate():
    model = _mlp()
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    opt = model.optimizer
    assert int(np.asarray(opt.iterations)) == 4
    _prune_once(model, restart_learning_rate=True)
    assert int(np.asarray(opt.iterations)) == 0
    assert float(np.asarray(opt.learning_rate)) == pytest.approx(0.01)
    slots = [v for v in opt.variables if v is not opt.iterations and "learning_rate" not in v.path]
    assert slots and all(not np.any(np.asarray(v)) for v in slots)


def test_sparsity_logger_refuses_a_model_it_cannot_read():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    model.compile("sgd", "mse")
    with pytest.raises(ConfigError, match="no prunable kernels"):
        model.fit(np.zeros((4, 4)), np.zeros((4, 4)), verbose=0, callbacks=[SparsityLogger()])


@pytest.mark.parametrize("backend,kind", [("tensorflow", "sequential"), ("jax", "functional")])
def test_user_script_prunes_keeps_zeros_and_saves_a_plain_model(run_keras3, tmp_path, backend, kind):
    proc = run_keras3(["tests/keras3_user_script.py", str(tmp_path), kind], backend)
    assert proc.returncode == 0, proc.stdout[-4000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["backend"] == backend
    total = out["prunable"]
    expected = [0.0] + [count_for(t, total) / total for t in TARGETS]
    assert [out["history"][str(e)] for e in range(4)] == pytest.approx(expected, abs=1e-12)
    assert out["logged"] == pytest.approx(expected, abs=1e-12)
    assert out["zeros"] == count_for(0.488, total)  # exactly the pruned ones: none came back
    assert out["pruned_stay_zero"] and out["loss_finite"]
    # one global threshold: layers end far apart (layer-wise pruning would put each within rounding of 48.8 %)
    assert max(out["per_layer"]) - min(out["per_layer"]) > 0.1, out["per_layer"]
    assert out["max_column_norm_first"] <= 0.5 + 1e-5  # the user's MaxNorm(0.5) was chained, not replaced
    flops = out["train_flops"]  # 3 × forward × 256 examples, dense in epoch 0, shrinking with the kernels
    assert flops[0] == 3 * 256 * (2 * (20 * 32 + 32 * 16 + 16 * 4) + 2 * (32 + 16) + 4)
    assert flops[0] > flops[1] > flops[2] > flops[3]
    check = ("import json, sys, numpy as np, keras\n"
             f"m = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
             "ks = [np.asarray(v) for v in m.trainable_weights if len(v.shape) == 2]\n"
             "print('LOADED', json.dumps({'zeros': int(sum(k.size - np.count_nonzero(k) for k in ks)),\n"
             "  'sums': [float(np.abs(k).sum()) for k in ks],\n"
             "  'keras_sdd': any(n.startswith('keras_sdd') for n in sys.modules)}))\n")
    loaded = run_keras3(["-c", check], backend)
    assert loaded.returncode == 0, loaded.stdout[-3000:]
    got = json.loads(next(line for line in loaded.stdout.splitlines() if line.startswith("LOADED "))[7:])
    assert got == {"zeros": out["zeros"], "sums": pytest.approx(out["kernel_sums"], rel=1e-6), "keras_sdd": False}
