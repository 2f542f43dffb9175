"""The SDD study end to end at toy size: records, exact sparsity, masks, retraining modes, TensorBoard, resume."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_sdd import ConfigError, models, seeds
from keras_sdd.config import StudyConfig
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.callbacks import RewindCapture
from keras_sdd.study import directory, loading, runner
from keras_sdd.study.assemble import assemble, round_targets
from keras_sdd.study.records import TIME_FIELDS, read_rounds
from keras_sdd.training import policy
from keras_sdd.training.retrain import Retrainer, snapshot

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0)


def tiny(tmp_path, **changes):
    return StudyConfig(**{**TINY, "logdir": str(tmp_path / "study"), **changes})


def run_loop(config):
    """The study's steps by hand (plan, assemble, create, loop), keeping the loop for inspection."""
    plan = directory.plan(config)
    assembly = assemble(config)
    directory.create(plan, config)
    loop = runner.RoundLoop(assembly, plan)
    return loop, loop.run()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished toy study, shared by the tests that only read it."""
    config = tiny(tmp_path_factory.mktemp("s"))
    loop, summary = run_loop(config)
    return config, loop, summary


def test_rounds_and_exact_sparsity(finished):
    config, study, summary = finished
    rows = read_rounds(pathlib.Path(config.logdir))
    targets = round_targets(config)
    assert [r["round"] for r in rows] == [0, 1, 2, 3] and targets == [0.0, 0.5, 0.75, 0.875]
    for row, target in zip(rows, targets):
        assert abs(row["pruned_params"] - target * row["prunable_params"]) <= 1   # within one weight
        assert row["sparsity"] == pytest.approx(row["pruned_params"] / row["prunable_params"])
        assert row["remaining_params"] == row["total_params"] - row["pruned_params"]
        for key in ("train_noisy_accuracy", "train_clean_accuracy", "val_accuracy", "test_accuracy"):
            assert 0.0 <= row[key] <= 1.0
    # FCN 10-16-2: 10·16 + 16·2 prunable kernels, + 16 + 2 biases.
    assert rows[0]["prunable_params"] == 192 and rows[0]["total_params"] == 210
    assert summary["complete"] and summary["rounds_done"] == 4


def test_masks_never_revived_and_weights_exactly_sparse(finished):
    config, _, _ = finished
    previous = None
    for k in range(4):
        model = loading.load_round(config.logdir, k).model
        masks = tfmot_bridge.get_masks(model)
        weights = tfmot_bridge.get_weights(model)
        for key, m in masks.items():
            assert np.all(weights[key][m == 0] == 0)
            if previous is not None:
                assert np.all(m <= previous[key])   # a pruned weight never comes back
        previous = masks


def test_train_function_traced_once_for_all_rounds(finished):
    _, loop, _ = finished
    assert loop.a.model.train_function.experimental_get_tracing_count() == 1


def test_study_directory_contents(finished):
    config, _, summary = finished
    d = pathlib.Path(config.logdir)
    for name in ("rounds.csv", "summary.json", "config.json", "sdd_curve.png", "checkpoints/round-003.index"):
        assert (d / name).exists(), name
    assert StudyConfig.from_dict(json.loads((d / "config.json").read_text())) == config
    tags = set()
    for event_file in (d / "tensorboard" / "study").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"round/test_accuracy", "vs_remaining/test_accuracy", "round/train_noisy_accuracy"} <= tags
    runs = sorted(p.name for p in (d / "tensorboard").iterdir())
    assert runs == ["epochs", "study"]          # two runs per study, not one per round (tests/test_board.py)


def test_existing_study_refused_without_resume(finished):
    config, _, _ = finished
    before = (pathlib.Path(config.logdir) / "rounds.csv").read_text()
    with pytest.raises(ConfigError, match="already holds a study"):
        runner.run_study(config)
    with pytest.raises(ConfigError, match=r"settings differ.*--noise_rate"):
        runner.run_study(config.replace(resume=True, noise_rate=0.3))
    assert (pathlib.Path(config.logdir) / "rounds.csv").read_text() == before


def test_resume_of_finished_study_is_a_no_op(finished):
    config, _, _ = finished
    before = (pathlib.Path(config.logdir) / "rounds.csv").read_text()
    summary = runner.run_study(config.replace(resume=True))
    assert summary["rounds_done"] == 4
    assert (pathlib.Path(config.logdir) / "rounds.csv").read_text() == before


def test_gradual_frequency_refused_before_training(tmp_path):
    config = tiny(tmp_path, prune_method="tfmot_constant", prune_frequency=10_000)
    with pytest.raises(ConfigError, match="prune nothing at all"):
        runner.run_study(config)
    assert not (pathlib.Path(config.logdir) / "rounds.csv").exists()


def test_gradual_tfmot_rounds_reach_their_targets(tmp_path):
    config = tiny(tmp_path, prune_method="tfmot_polynomial", prune_frequency=2, max_rounds=2)
    runner.run_study(config)
    rows = read_rounds(pathlib.Path(config.logdir))
    # tfmot prunes layer by layer, each layer to the target: the global share matches within a weight a layer.
    assert [round(r["sparsity"], 2) for r in rows] == [0.0, 0.5, 0.75]


# --- retraining modes ---------------------------------------------------------------------------------------


def _wrapped(seed=0):
    plain = models.build("fcn", (6,), 3, width=8, depth=1, seed=seed)
    model = tfmot_bridge.wrap(plain)
    schedule = policy.RoundSchedule("constant", 0.05, steps_per_epoch=4, epochs=2)
    opt = tf_keras.optimizers.SGD(schedule, momentum=0.9)
    model.compile(opt, tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, opt, schedule


def _train_and_prune(model):
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 6)), rng.integers(0, 3, 32), batch_size=8, epochs=2, verbose=0)
    tfmot_bridge.prune(model, 0.5)


@pytest.mark.parametrize("mode", ["lr_rewind", "finetune", "weight_rewind", "scratch"])
def test_retrain_modes(mode):
    model, opt, schedule = _wrapped()
    init = snapshot(model)
    fresh = snapshot(models.build("fcn", (6,), 3, width=8, depth=1, seed=99))
    _train_and_prune(model)
    trained = snapshot(model)
    masks = tfmot_bridge.get_masks(model)
    Retrainer(mode, optimizer=opt, schedule=schedule, finetune_lr=0.001, rewind=init,
              fresh_init=lambda k: fresh).before_round(model, 1)
    expected = {"lr_rewind": trained, "finetune": trained, "weight_rewind": init, "scratch": fresh}[mode]
    after = snapshot(model)
    for name, weights in after.items():
        for i, w in enumerate(weights):
            mask = masks.get(f"{name}/kernel") if i == 0 else None
            want = expected[name][i] * (mask if mask is not None else 1)
            np.testing.assert_array_equal(w, want)
    assert tfmot_bridge.get_masks(model).keys() == masks.keys()
    assert all(np.array_equal(tfmot_bridge.get_masks(model)[k], masks[k]) for k in masks)
    assert int(opt.iterations.numpy()) == 0
    assert schedule.value_at(0) == pytest.approx(0.001 if mode == "finetune" else 0.05)


def test_rewind_capture_equals_weights_at_step_k():
    x = np.random.default_rng(1).normal(size=(48, 6)).astype("float32")
    y = np.arange(48) % 3
    a, _, _ = _wrapped()
    b, _, _ = _wrapped()
    captured = {}
    cb = RewindCapture(4, lambda snap: captured.update(snap))
    a.fit(x, y, batch_size=6, epochs=1, shuffle=False, callbacks=[cb], verbose=0)   # 8 steps, capture at 4
    b.fit(x[:24], y[:24], batch_size=6, epochs=1, shuffle=False, verbose=0)          # exactly 4 steps
    for name, weights in snapshot(b).items():
        for w, c in zip(weights, captured[name]):
            np.testing.assert_allclose(c, w, rtol=1e-6, atol=1e-7)


def test_weight_rewind_study_restores_init(tmp_path):
    config = tiny(tmp_path, retrain="weight_rewind", max_rounds=1, epochs=2)
    runner.run_study(config)
    init = runner._load_snapshot(pathlib.Path(config.logdir) / "rewind_weights.npz")
    plain = models.build("fcn", (10,), 2, width=16, depth=1, seed=seeds.derive(0, "init", 0))
    for layer in plain.layers:
        if layer.get_weights():
            for w, r in zip(layer.get_weights(), init[layer.name]):
                np.testing.assert_array_equal(w, r)


# --- resume after a kill --------------------------------------------------------------------------------------


def _flagfile(path: pathlib.Path, logdir: pathlib.Path) -> pathlib.Path:
    lines = [f"--logdir={logdir}", "--dataset=gaussian_mixture", "--gmm_dim=20", "--gmm_train_size=3000",
             "--gmm_test_size=500", "--noise_rate=0.2", "--model=fcn", "--width=64", "--depth=1", "--epochs=8",
             "--batch_size=16", "--optimizer=sgd", "--learning_rate=0.05", "--lr_schedule=multistep",
             "--milestones=4,6", "--prune_fraction=0.4", "--max_rounds=2", "--checkpoint_every_secs=0",
             "--deterministic", "--seed=3"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _app(*args):
    return [sys.executable, "-m", "apps.sdd", *args]


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = _flagfile(tmp_path / "a.flags", tmp_path / "full")
    cut = _flagfile(tmp_path / "b.flags", tmp_path / "cut")
    ref = subprocess.Popen(_app(f"--flagfile={full}"), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    victim = subprocess.Popen(_app(f"--flagfile={cut}"), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    pointer = tmp_path / "cut" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 240
    killed_at = None
    while time.monotonic() < deadline and victim.poll() is None:
        if pointer.exists():
            try:
                state = json.loads(pointer.read_text())
            except ValueError:
                state = None
            if state and state["round"] >= 1 and 0 < state["epoch"] < 8:
                victim.send_signal(signal.SIGKILL)
                killed_at = state
                break
        time.sleep(0.01)
    victim.wait()
    assert killed_at is not None, "the study finished before it could be interrupted mid-round"
    rows_before = read_rounds(tmp_path / "cut")
    assert len(rows_before) == killed_at["round"]             # the interrupted round is not recorded
    resumed = subprocess.run(_app(f"--flagfile={cut}", "--resume"), cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    assert ref.wait(timeout=300) == 0
    a, b = read_rounds(tmp_path / "full"), read_rounds(tmp_path / "cut")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for key in ra:
            if key not in TIME_FIELDS:
                assert ra[key] == rb[key], (ra["round"], key)


def test_image_study_prunes_only_dense_layers(tmp_path):
    """A VGG-like on the user's own .npz images with standard augmentation and --prune_only_dense: the conv
    kernels stay dense, only the classifier is pruned, and the sparsity counts only what is in scope."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 96)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:32], y_test=y[:32])
    common = dict(dataset="npz", data_path=str(tmp_path / "d.npz"), augment="standard", model="vgg_like",
                  width=2, depth=2, epochs=1, batch_size=32, max_rounds=1, prune_only_dense=True)
    with pytest.raises(ConfigError, match="nothing to prune"):
        runner.run_study(tiny(tmp_path / "none", keep_output_dense=True, **common))
    assert not (tmp_path / "none").exists()   # refused before anything was written
    config = tiny(tmp_path, **common)
    loop, _ = run_loop(config)
    rows = read_rounds(pathlib.Path(config.logdir))
    assert set(rows[1]["per_layer_sparsity"]) == {"logits"}
    masks = tfmot_bridge.get_masks(loop.a.student)
    assert list(masks) == ["logits/kernel"]
    assert rows[1]["prunable_params"] == masks["logits/kernel"].size
    assert rows[1]["pruned_params"] == round(0.5 * masks["logits/kernel"].size)
    conv = [layer for layer in loop.a.student.layers if "conv" in layer.name]
    assert conv and all(np.count_nonzero(layer.get_weights()[0]) == layer.get_weights()[0].size for layer in conv)
