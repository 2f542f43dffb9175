"""CalibrationLogger and TrainingCostLogger in a plain model.fit: numbers equal the pure functions'."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_sdd import models
from keras_sdd.analysis import calibration, flops
from keras_sdd.callbacks import CalibrationLogger, IterativeMagnitudePruning, TrainingCostLogger
from keras_sdd.pruning import tfmot_bridge


def tags(log_dir):
    out = set()
    for path in log_dir.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            out.update(v.tag for v in event.summary.value)
    return out


def test_calibration_and_cost_loggers(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    xv, yv = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    model = tfmot_bridge.wrap(models.build("fcn", (6,), 3, width=8, depth=1, seed=0))
    model.compile(tf_keras.optimizers.SGD(0.1), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cal_cb = CalibrationLogger((xv, yv), tmp_path / "cal", every_n_epochs=1, bins=10)
    cost_cb = TrainingCostLogger(examples_per_epoch=64, log_dir=tmp_path / "cost")
    imp = IterativeMagnitudePruning(0.5, prune_epochs=[1], verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[imp, cal_cb, cost_cb])
    h = history.history
    # the last epoch's ECE equals the pure function on the final model
    probs = calibration.softmax(model.predict(xv, verbose=0))
    assert h["val_ece"][-1] == pytest.approx(calibration.ece(probs, yv, 10))
    dense = 3 * flops.forward_flops(model, {}).total * 64
    sparse = 3 * flops.inference_flops(model) * 64
    assert h["train_flops"] == pytest.approx([dense, sparse]) and sparse < dense
    assert h["train_flops_cum"][-1] == pytest.approx(dense + sparse)
    assert {"calibration/ece", "calibration/reliability"} <= tags(tmp_path / "cal")
    assert {"cost/train_flops", "cost/train_flops_cum"} <= tags(tmp_path / "cost")
    again = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cost_cb])   # reusable: total restarts
    assert again.history["train_flops_cum"] == pytest.approx([sparse])
