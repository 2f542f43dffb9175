"""The study app on Keras 3 (``--keras=3``, ``keras_sdd.keras3.study``): the tiny study gives the tf_keras run's
sparsities and counts exactly and comparable accuracy, in the same directory format; refusals are one line;
resuming a finished study writes nothing; an interrupted study resumes at round granularity."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_sdd.config import StudyConfig, validate
from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import study as k3study
from keras_sdd.study import runner
from keras_sdd.study.records import NAMES, RoundRecords, read_rounds

from conftest import TINY

REPO = pathlib.Path(__file__).resolve().parents[1]


def tree(root: pathlib.Path):
    """{relative path: bytes} of every file below ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The tiny study run by the tf_keras runner and by the Keras 3 runner (same config but --keras)."""
    root = tmp_path_factory.mktemp("k3")
    c2 = StudyConfig(**{**TINY, "logdir": str(root / "k2")})
    c3 = c2.replace(logdir=str(root / "k3"), keras="3")
    s2 = runner.run_study(c2)
    s3 = runner.run_study(c3)   # dispatches on config.keras
    return c2, c3, s2, s3


def test_same_sparsities_and_counts_as_the_tf_keras_run(pair):
    c2, c3, s2, s3 = pair
    r2, r3 = read_rounds(pathlib.Path(c2.logdir)), read_rounds(pathlib.Path(c3.logdir))
    assert RoundRecords(pathlib.Path(c3.logdir)).header() == NAMES
    assert [r["round"] for r in r3] == [0, 1, 2, 3]
    for a, b in zip(r2, r3):
        for col in ("target_sparsity", "sparsity", "pruned_params", "prunable_params", "total_params",
                    "remaining_params", "nonzero_weights", "inference_flops", "train_flops_dense", "epochs"):
            assert a[col] == b[col], (b["round"], col, a[col], b[col])
        assert b["nonzero_weights"] == b["prunable_params"] - b["pruned_params"]  # no pruned weight came back
        assert set(b["per_layer_sparsity"]) == {"dense1", "logits"}
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.1)   # loose: run-to-run spread
        assert b["ece_clean"] == b["ece_clean"] and 0.0 <= b["ece_clean"] <= 1.0  # computed, not NaN
        assert 0.5 < b["train_noisy_accuracy"] <= 1.0
    assert r3[2]["sparsity"] == 0.75 and r3[3]["nonzero_weights"] == 24
    assert set(s3) == set(s2) | {"keras"} and s3["keras"]["backend"] in ("tensorflow", "jax")
    assert s3["complete"] and s3["rounds_done"] == 4
    assert json.loads((pathlib.Path(c3.logdir) / "config.json").read_text())["keras"] == "3"


def test_round_checkpoints_hold_the_zeros(pair):
    import keras

    from keras_sdd.keras3.fcn import build_fcn

    _, c3, _, _ = pair
    root = pathlib.Path(c3.logdir)
    rows = read_rounds(root)
    for k, row in enumerate(rows):
        model = build_fcn((10,), 2, (16,), seed=None)
        model.load_weights(str(k3study.weights_path(root, k)))
        kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers if layer.weights]
        assert sum(int(np.count_nonzero(w)) for w in kernels) == row["nonzero_weights"]
    assert (root / "predictions" / "round-003.npz").is_file() and (root / "sdd_curve.png").is_file()


def test_resume_of_a_finished_study_writes_nothing(pair):
    _, c3, _, s3 = pair
    root = pathlib.Path(c3.logdir)
    before = tree(root)
    assert k3study.run_study(c3.replace(resume=True)) == json.loads((root / "summary.json").read_text())
    assert tree(root) == before


def test_interrupted_study_resumes_after_its_last_recorded_round(pair, tmp_path):
    _, c3, _, _ = pair
    root = tmp_path / "cut"
    shutil.copytree(c3.logdir, root)
    full = read_rounds(root)
    text = (root / "rounds.csv").read_text().splitlines(keepends=True)
    (root / "rounds.csv").write_text("".join(text[:3]))        # as if killed during round 2
    (root / "summary.json").unlink()
    for k in (2, 3):
        k3study.weights_path(root, k).unlink()
        k3study.masks_path(root, k).unlink()
    summary = k3study.run_study(c3.replace(logdir=str(root), resume=True))
    rows = read_rounds(root)
    assert summary["rounds_done"] == 4 and [r["round"] for r in rows] == [0, 1, 2, 3]
    for a, b in zip(full, rows):
        assert (a["sparsity"], a["nonzero_weights"]) == (b["sparsity"], b["nonzero_weights"])
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.02)


def test_refusals_are_one_line(tmp_path):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "s"), "keras": "3"})
    with pytest.raises(ConfigError) as e:
        validate(config.replace(study="kd", teacher="x", model="vgg_like", retrain="scratch",
                                prune_method="tfmot_polynomial", jit_compile=True))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--keras=3 does not support")
    for part in ("--study=kd", "--model=vgg_like", "--retrain=scratch", "--prune_method=tfmot_polynomial",
                 "--jit_compile=True"):
        assert part in msg
    with pytest.raises(ConfigError, match="--keras='4' is not valid"):
        validate(config.replace(keras="4"))
    validate(config)   # the tiny study itself is supported
    assert not (tmp_path / "s").exists()


def test_a_tf_keras_study_is_not_resumed_on_keras_3(pair):
    c2, _, _, _ = pair
    root = pathlib.Path(c2.logdir)
    before = tree(root)
    with pytest.raises(ConfigError, match="settings differ.*--keras: '2' -> '3'"):
        k3study.run_study(c2.replace(resume=True, keras="3"))
    assert tree(root) == before


def test_layer_seeds_are_the_tf_keras_models_seeds():
    from keras_sdd.keras3.fcn import layer_seed
    from keras_sdd.models.registry import Seeds

    assert [layer_seed(7, n) for n in ("dense1", "logits")] == [Seeds(7).of(n) for n in ("dense1", "logits")]


TINY_FLAGS = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
              "--model=fcn", "--width=16", "--depth=1", "--epochs=3", "--batch_size=64", "--optimizer=adam",
              "--learning_rate=0.01", "--lr_schedule=cosine", "--prune_fraction=0.5", "--max_rounds=3",
              "--threads=1", "--notrack_energy", "--nosave_predictions", "--keras=3"]


def test_keras3_runner_imports_neither_tf_keras_nor_tfmot():
    """The Keras 3 runner's own modules import no tf_keras, tfmot or tf_keras study code (the shared helpers it
    uses, data and the directory rules, do load tf_keras in the app's process, which pins it anyway)."""
    import ast

    banned = ("tf_keras", "tensorflow_model_optimization", "keras_sdd.study.runner", "keras_sdd.study.assemble",
              "keras_sdd.pruning.tfmot_bridge", "keras_sdd.training", "keras_sdd.callbacks")
    for name in ("study", "fcn", "policy"):
        tree_ = ast.parse((REPO / "keras_sdd" / "keras3" / f"{name}.py").read_text())
        imported = [a.name for n in ast.walk(tree_) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module or "" for n in ast.walk(tree_) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in imported if m.startswith(banned)], (name, imported)


def test_app_runs_keras3_and_refuses_in_one_line(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "apps.sdd", *TINY_FLAGS, f"--logdir={tmp_path / 's'}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = read_rounds(tmp_path / "s")
    assert [r["sparsity"] for r in rows] == [0.0, 0.5, 0.75, 0.875]
    assert (tmp_path / "s" / "flags.txt").is_file()
    bad = subprocess.run([sys.executable, "-m", "apps.sdd", *TINY_FLAGS, "--retrain=finetune",
                          f"--logdir={tmp_path / 'r'}"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --keras=3 does not support --retrain=finetune (only lr_rewind)")
    assert not (tmp_path / "r").exists()


def test_execution_steps_divide_the_epoch():
    assert k3study.execution_steps(71, 100) == 71          # the quickstart: one call per epoch
    assert k3study.execution_steps(469, 100) == 67
    assert k3study.execution_steps(7, 1) == 1 and k3study.execution_steps(12, 5) == 4


def test_app_on_the_jax_backend_keeps_the_same_sparsities(run_keras3, tmp_path):
    """Under JAX the compiled step captures the masks: the study rebuilds it after each pruning, so no pruned
    weight comes back (non-zero kernels = unpruned ones) and the sparsities are the tf_keras run's."""
    proc = run_keras3(["-m", "apps.sdd", *TINY_FLAGS, f"--logdir={tmp_path / 'j'}"], backend="jax")
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = read_rounds(tmp_path / "j")
    assert [r["sparsity"] for r in rows] == [0.0, 0.5, 0.75, 0.875]
    assert [r["nonzero_weights"] for r in rows] == [192, 96, 48, 24]
    assert json.loads((tmp_path / "j" / "summary.json").read_text())["keras"]["backend"] == "jax"
