"""Callbacks in users' own code: a standalone tfmot script with our callbacks, then in-process details."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot

from keras_sdd.callbacks import IterativeMagnitudePruning, SparsityLogger
from keras_sdd.training.policy import reset_optimizer
from keras_sdd.errors import ConfigError
from keras_sdd.pruning import tfmot_bridge as B

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "user_script_callbacks.py"
L = tf_keras.layers


def read_scalars(log_dir):
    """{tag: {step: value}} from the TF2 summary event files under log_dir."""
    scalars = {}
    for path in pathlib.Path(log_dir).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def test_user_script_with_stock_tfmot_wrapping(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_USE_LEGACY_KERAS", None)  # the user's shell knows nothing of it
    env.update(TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1", OMP_NUM_THREADS="1")  # 2 shared cores
    log_dir = tmp_path / "logs"
    done = subprocess.run([sys.executable, str(SCRIPT), str(log_dir)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    total = result["prunable"]
    expected = [0.0, 0.2, 0.36, 0.488]
    history = [result["callback_history"][str(e)] for e in range(4)]
    # within one weight; the last epoch crosses step 100, where ConstantSparsity(0.0, 0) would reset the masks
    for got in (history, result["logged"]):
        assert np.all(np.abs(np.array(got) - expected) * total <= 1.0), got
    assert abs(result["final_mask_zeros"] - 0.488 * total) <= 1.0
    assert result["masked_weights_all_zero"]
    assert result["optimizer_iterations"] == result["steps_per_epoch"]  # restarted at the last pruning
    assert result["pruning_step"] == 4 * result["steps_per_epoch"]

    scalars = read_scalars(log_dir)
    assert sorted(scalars["sparsity/global"]) == [0, 1, 2, 3]
    np.testing.assert_allclose([scalars["sparsity/global"][e] for e in range(4)], result["logged"], atol=1e-6)
    layers = [t for t in scalars if t.startswith("sparsity/") and t != "sparsity/global"]
    assert len(layers) == 3 and all(sorted(scalars[t]) == [0, 1, 2, 3] for t in layers)


def small_model():
    tf_keras.utils.set_random_seed(1)
    return tf_keras.Sequential([L.Dense(12, activation="relu", input_shape=(5,), name="h1"),
                                L.Dense(6, activation="relu", name="h2"),
                                L.Dense(2, name="logits")])


def xy(n=48):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 2, n)


def test_callback_without_update_pruning_step_and_with_scope(tmp_path):
    model = tfmot.sparsity.keras.prune_low_magnitude(
        small_model(), pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1))
    model.compile(tf_keras.optimizers.legacy.SGD(0.05, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = xy()
    scope = B.PruneScope(keep_output_dense=True)
    imp = IterativeMagnitudePruning(0.5, prune_epochs=None, scope=scope, restart_learning_rate=True, verbose=0)
    logger = SparsityLogger(tmp_path / "tb", scope=scope)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[imp, logger])
    assert [round(imp.history[e], 4) for e in range(3)] == [0.0, 0.5, 0.75]
    np.testing.assert_allclose(history.history["sparsity"], [0.0, 0.5, 0.75])
    # ConstantSparsity(0.5, frequency=1) was neutralised: nothing pruned out of scope, and in scope exactly ours
    assert np.all(B.get_masks(model)["logits/kernel"] == 1)
    assert set(imp.original_schedules) == {w.name for w in B.wrappers(model)}
    assert all(int(w.pruning_step.numpy()) == 3 * 3 for w in B.wrappers(model))
    assert int(model.optimizer.iterations.numpy()) == 3  # restarted at the start of the last epoch
    assert set(read_scalars(tmp_path / "tb")) == {"sparsity/global", "sparsity/h1", "sparsity/h2"}


@pytest.mark.parametrize("legacy", [False, True])
def test_reset_optimizer_zeroes_slots_and_iterations_only(legacy):
    model = small_model()
    optimizers = tf_keras.optimizers.legacy if legacy else tf_keras.optimizers
    model.compile(optimizers.Adam(0.01), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = xy(16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    opt = model.optimizer
    assert int(opt.iterations.numpy()) == 2
    reset_optimizer(opt)
    assert int(opt.iterations.numpy()) == 0
    variables = opt.variables() if callable(opt.variables) else opt.variables
    # slot names: 'Adam/m/dense/kernel:0' (optimizer) or 'Adam/dense/kernel/m:0' (legacy)
    slots = [v for v in variables if {"m", "v"} & set(v.name.split(":")[0].split("/")[1:])]
    assert slots and all(np.all(v.numpy() == 0) for v in slots)
    assert float(tf_keras.backend.get_value(opt.learning_rate)) == pytest.approx(0.01)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # still trains


def test_callback_refuses_unwrapped_model():
    model = small_model()
    model.compile("sgd", "mse")
    x, y = xy(8)
    with pytest.raises(ConfigError):
        model.fit(x, y.astype(np.float32), epochs=1, verbose=0, callbacks=[IterativeMagnitudePruning()])
    with pytest.raises(ConfigError):
        IterativeMagnitudePruning(prune_fraction=1.0)


def test_callback_is_reusable_and_takes_a_method(capsys):
    """One instance serves two fits (state reset in on_train_begin); the method is an argument; its lines print."""
    model = B.wrap(small_model())
    model.compile(tf_keras.optimizers.SGD(0.05), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = xy()
    imp = IterativeMagnitudePruning(0.5, prune_epochs=[1], method="random", seed=3)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[imp])
    assert [round(imp.history[e], 4) for e in range(2)] == [0.0, 0.5]
    first = B.get_masks(model)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[imp])
    assert [round(imp.history[e], 4) for e in range(2)] == [0.5, 0.75]   # history reset, pruning continues
    for key, m in B.get_masks(model).items():
        assert np.all(m <= first[key])
    # verbose=1 (the default) prints one line per pruning through Keras' own printing (stdout in a script)
    assert capsys.readouterr().out.splitlines() == [
        "epoch 2: IterativeMagnitudePruning: global sparsity 0.0000 -> 0.5000",
        "epoch 2: IterativeMagnitudePruning: global sparsity 0.5000 -> 0.7500"]
    with pytest.raises(ConfigError, match="between-round method"):
        IterativeMagnitudePruning(method="tfmot_constant")


def test_callbacks_package_never_imports_the_study_config():
    code = ("import sys, keras_sdd.callbacks as c; "
            "print(sorted(m for m in sys.modules if m in ('keras_sdd.config', 'keras_sdd.study.runner')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
