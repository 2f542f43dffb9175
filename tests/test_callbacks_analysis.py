"""CalibrationLogger and TrainingCostLogger in a plain model.fit of a tiny pruned model: the logs hold the numbers,
they equal the pure functions' results, and the TensorBoard event files hold the tags."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_sdd import models
from keras_sdd.analysis import calibration, flops
from keras_sdd.callbacks import CalibrationLogger, IterativeMagnitudePruning, TrainingCostLogger
from keras_sdd.pruning import tfmot_bridge


def events(log_dir):
    """{tag: [(step, value or image bytes)]} of the event files under log_dir."""
    out = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else None
                out.setdefault(v.tag, []).append((event.step, value))
    return out


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    xv, yv = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    return x, y, xv, yv


def compiled(model):
    model.compile(tf_keras.optimizers.SGD(0.1), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_calibration_and_cost_loggers(tmp_path, data):
    x, y, xv, yv = data
    model = compiled(tfmot_bridge.wrap(models.build("fcn", (6,), 3, width=8, depth=1, seed=0)))
    cal_cb = CalibrationLogger((xv, yv), tmp_path / "cal", every_n_epochs=1, bins=10)
    cost_cb = TrainingCostLogger(log_dir=tmp_path / "cost", examples_per_epoch=64)
    imp = IterativeMagnitudePruning(0.5, prune_epochs=[1], verbose=0)
    h = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[imp, cal_cb, cost_cb]).history
    # the last epoch's ECE equals the pure function on the final model's logits
    logits = model.predict(xv, verbose=0)
    assert h["val_ece"][-1] == pytest.approx(calibration.ece(calibration.softmax(logits), yv, 10), abs=1e-12)
    assert cal_cb.last.count.sum() == 40
    dense = 3 * flops.forward_flops(model, {}).total * 64
    sparse = 3 * flops.inference_flops(model) * 64                  # the masks after the pruning at epoch 1
    assert h["train_flops"] == pytest.approx([dense, sparse]) and sparse < dense
    assert h["train_flops_cum"] == pytest.approx([dense, dense + sparse])
    cal_events, cost_events = events(tmp_path / "cal"), events(tmp_path / "cost")
    assert [s for s, _ in cal_events["calibration/ece"]] == [0, 1]
    assert float(cal_events["calibration/ece"][-1][1]) == pytest.approx(h["val_ece"][-1], rel=1e-6)
    png = cal_events["calibration/reliability"][-1][1][2]          # [width, height, encoded PNG]
    assert png.startswith(b"\x89PNG")
    assert [float(v) for _, v in cost_events["cost/train_flops"]] == pytest.approx([dense, sparse], rel=1e-6)
    assert float(cost_events["cost/train_flops_cum"][-1][1]) == pytest.approx(dense + sparse, rel=1e-6)
    # reusable: a second fit starts its total again
    again = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cost_cb, cal_cb]).history
    assert again["train_flops_cum"] == pytest.approx([sparse]) and "val_ece" in again


def test_every_n_epochs_and_probabilities(tmp_path, data):
    x, y, xv, yv = data
    base = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    probs_model = tf_keras.Sequential([base, tf_keras.layers.Softmax()])       # outputs probabilities
    probs_model.compile(tf_keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    cb = CalibrationLogger((xv, np.eye(3)[yv]), tmp_path, every_n_epochs=2, bins=5)   # one-hot labels
    h = probs_model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[cb]).history
    assert len(h["val_ece"]) == 2                                # epochs 2 and 4 only
    assert [s for s, _ in events(tmp_path)["calibration/ece"]] == [1, 3]
    p = probs_model.predict(xv, verbose=0)                      # probabilities, recognised as such
    assert h["val_ece"][-1] == cb.last.ece == pytest.approx(calibration.ece(p, yv, 5), abs=1e-12)
    assert cb.last.ece == pytest.approx(calibration.ece(base.predict(xv, verbose=0), yv, 5, from_logits=True),
                                        abs=1e-6)               # the same as from the logits (float32 softmax)


def test_examples_per_epoch_from_the_batches(data):
    x, y, _, _ = data
    model = compiled(models.build("fcn", (6,), 3, width=8, depth=1, seed=0))
    per_example = 3 * flops.inference_flops(model)
    cb = TrainingCostLogger(batch_size=16)                     # no log_dir: logs only
    h = model.fit(x[:56], y[:56], batch_size=16, epochs=2, verbose=0, callbacks=[cb]).history
    assert h["train_flops"] == pytest.approx([per_example * 64] * 2)   # 4 batches of 16 (the last partial: full)
    assert cb.epoch_examples() == 64
    with pytest.raises(ValueError, match="examples_per_epoch"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[TrainingCostLogger()])
