"""keras_sdd.keras3's FLOPs walker (against the tf_keras walker on the same architectures), TrainingCostLogger,
CalibrationLogger, RewindCapture with steps_per_execution, and the one-line errors across the Keras line."""
import keras
import numpy as np
import pytest
import tf_keras

from keras_sdd.analysis import calibration
from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import CalibrationLogger, RewindCapture, SparsityLogger, TrainingCostLogger
from keras_sdd.keras3 import flops as k3flops
from keras_sdd.keras3 import kernel_masks as km


def _build(lib, kind):
    """The same architecture in Keras 3 (``lib=keras``) or tf_keras."""
    L = lib.layers
    if kind == "mlp":
        inputs = L.Input((20,))
        x = L.Dense(32, activation="relu")(inputs)
        x = L.Dense(16, activation="gelu")(x)
        outputs = L.Dense(4, activation="softmax")(x)
    elif kind == "conv":
        inputs = L.Input((12, 12, 3))
        x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(2)(x)
        x = L.DepthwiseConv2D(3, depth_multiplier=2)(x)
        x = L.Conv2DTranspose(4, 2, strides=2)(x)
        x = L.GlobalAveragePooling2D()(x)
        outputs = L.Dense(5)(x)
    else:  # attention over a sequence, with a Conv1D stem, a residual and LayerNorm
        inputs = L.Input((10, 6))
        x = L.Conv1D(8, 3, padding="same")(inputs)
        a = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
        x = L.LayerNormalization()(L.Add()([x, a]))
        x = L.Dense(8, activation="relu")(x)
        outputs = L.Dense(3)(L.Flatten()(x))
    return lib.Model(inputs, outputs)


@pytest.mark.parametrize("kind", ["mlp", "conv", "attention"])
def test_flops_match_the_tf_keras_walker(kind):
    from keras_sdd.analysis import flops as tfk_flops

    sparse, dense = k3flops.forward_flops(k3flops.layer_costs(_build(keras, kind)))
    expected = tfk_flops.forward_flops(_build(tf_keras, kind), densities={}).dense_total
    assert dense == sparse == pytest.approx(expected, rel=1e-12)


def test_flops_shrink_with_the_masks_and_cost_logger_counts_epochs():
    model = _build(keras, "mlp")
    costs = k3flops.layer_costs(model)
    dense_total = k3flops.forward_flops(costs)[1]
    first = model.layers[1]
    mask = np.zeros(first.kernel.shape, "float32")
    mask[:, :8] = 1.0  # a quarter of the first kernel kept
    km.assign_masks({"k": first.kernel}, {"k": mask})
    prunable_first = 2 * 20 * 32
    assert k3flops.forward_flops(costs)[0] == pytest.approx(dense_total - 0.75 * prunable_first)

    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 20)).astype("float32"), rng.integers(0, 4, 40)
    logger = TrainingCostLogger(batch_size=16)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[logger])
    per_epoch = 3 * (dense_total - 0.75 * prunable_first) * 48  # 3 batches of 16 (the last partial one as full)
    assert history.history["train_flops"] == pytest.approx([per_epoch] * 2)
    assert history.history["train_flops_cum"] == pytest.approx([per_epoch, 2 * per_epoch])
    with pytest.raises(ValueError, match="examples_per_epoch"):
        model.fit(x, y, verbose=0, callbacks=[TrainingCostLogger()])


def test_calibration_logger_logs_ece_of_the_predictions(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    model = _build(keras, "mlp")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20)).astype("float32"), rng.integers(0, 4, 64)
    logger = CalibrationLogger((x[:32], y[:32]), tmp_path, every_n_epochs=2, bins=10)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[logger])
    expected = calibration.ece(np.asarray(model.predict(x[:32], verbose=0)), y[:32], 10)
    assert history.history["val_ece"] == pytest.approx([expected])  # epoch 2 only (a missing key would fail)
    events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    assert {"calibration/ece", "calibration/reliability"} <= set(events.Tags()["tensors"])


def test_rewind_capture_with_steps_per_execution():
    model = _build(keras, "mlp")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(), steps_per_execution=4)
    x, y = np.ones((64, 20), "float32"), np.zeros(64, int)
    seen = []
    capture = RewindCapture(step=5, on_capture=seen.append)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[capture])
    assert capture.captured_at == 8 and seen == [capture.weights]  # 5 is not reachable with 4 steps a call


def test_errors_across_the_keras_line():
    from keras_sdd import callbacks as tfk_callbacks
    from keras_sdd import distillation as tfk_distillation
    from keras_sdd.keras3 import DistillationModel, IterativeMagnitudePruning

    k3 = _build(keras, "mlp")
    k3.compile("sgd", keras.losses.SparseCategoricalCrossentropy())
    x, y = np.zeros((8, 20), "float32"), np.zeros(8, int)
    with pytest.raises(ConfigError, match=r"Keras 3 model .*`from keras_sdd.keras3 import IterativeMagnitudePruning`"):
        k3.fit(x, y, verbose=0, callbacks=[tfk_callbacks.IterativeMagnitudePruning()])
    with pytest.raises(ConfigError, match=r"`from keras_sdd.keras3 import SparsityLogger`"):
        k3.fit(x, y, verbose=0, callbacks=[tfk_callbacks.SparsityLogger("unused")])
    with pytest.raises(ConfigError, match=r"`from keras_sdd.keras3 import DistillationModel`"):
        tfk_distillation.DistillationModel(k3, _build(keras, "mlp"))

    k2 = _build(tf_keras, "mlp")
    k2.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match=r"tf_keras .*`from keras_sdd.callbacks import IterativeMagnitudePruning`"):
        k2.fit(x, y, verbose=0, callbacks=[IterativeMagnitudePruning()])
    with pytest.raises(ConfigError, match=r"`from keras_sdd.callbacks import SparsityLogger`"):
        k2.fit(x, y, verbose=0, callbacks=[SparsityLogger()])
    with pytest.raises(ConfigError, match=r"`from keras_sdd.distillation import DistillationModel`"):
        DistillationModel(k2, _build(tf_keras, "mlp"))
