"""--replicates=R: packed replicates are the separate studies of their seeds, resumable after a kill anywhere."""
import json
import math
import subprocess
import sys

import pytest

from conftest import REPO
from keras_sdd.config import validate
from keras_sdd.errors import ConfigError
from keras_sdd.study import checkpoints, records, runner
from keras_sdd.study.packed import NOTE
from keras_sdd.study.records import read_rounds

#: Columns that measure the run, not the result (the packed round's share of time and energy).
RUN_COLUMNS = {"wall_time_s", "energy_kwh", "energy_kwh_cum", "co2_g", "co2_g_cum", "co2_method"}


def same_results(a, b):
    """Rows equal in every result column (NaN equals NaN)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for col in set(ra) - RUN_COLUMNS:
            va, vb = ra[col], rb[col]
            if isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb):
                continue
            assert va == vb, (ra["round"], col, va, vb)


@pytest.mark.parametrize("retrain,stacked", [
    (dict(retrain="lr_rewind"), True), (dict(retrain="weight_rewind", rewind_step=6, l2=1e-3), True),
    (dict(retrain="lr_rewind", l2=1e-3), False)], ids=["lr_rewind", "weight_rewind_l2", "branches_l2"])
def test_packed_replicate_is_its_seeds_separate_study(tmp_path, tiny_config, retrain, stacked, monkeypatch):
    from keras_sdd.study import packed as packed_lib

    if not stacked:   # the fallback step: one branch per replicate
        monkeypatch.setattr(packed_lib.StackedStep, "build", staticmethod(lambda *a: None))
    built = []
    original = packed_lib.PackedLoop.__init__

    def spy(self, *a, **k):
        original(self, *a, **k)
        built.append(self.stacked is not None)
    monkeypatch.setattr(packed_lib.PackedLoop, "__init__", spy)
    packed = tmp_path / "packed"
    summary = runner.run_study(tiny_config(packed, replicates=2, seed=3, **retrain))
    assert summary["complete"] and summary["rounds_done"] == 2 * 4 and built == [stacked]
    for seed in (3, 4):
        member = packed / f"seed={seed}"
        alone = runner.run_study(tiny_config(tmp_path / f"alone{seed}", seed=seed, **retrain))
        mine, theirs = read_rounds(member), read_rounds(tmp_path / f"alone{seed}")
        assert [r["sparsity"] for r in mine] == [r["sparsity"] for r in theirs]
        assert [r["nonzero_weights"] for r in mine] == [r["nonzero_weights"] for r in theirs]
        for a, b in zip(mine, theirs):   # same data, init and batch order: equal up to float summation order
            assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.01
            assert abs(a["train_noisy_loss"] - b["train_noisy_loss"]) < 1e-3
        config = json.loads((member / "config.json").read_text())
        assert config["seed"] == seed and config["replicates"] == 1 and config["logdir"] == str(member)
        note = json.loads((member / NOTE).read_text())
        assert note["packed"] and note["replicates"] == 2 and note["seeds"] == [3, 4]
        assert json.loads((member / "summary.json").read_text())["complete"] == alone["complete"] is True
        if retrain["retrain"] == "weight_rewind":
            assert (member / "rewind_weights.npz").is_file()
    # the two replicates are different studies (own noise draw, init, masks)
    a, b = read_rounds(packed / "seed=3"), read_rounds(packed / "seed=4")
    assert [r["train_noisy_loss"] for r in a] != [r["train_noisy_loss"] for r in b]
    from keras_sdd.study.loading import load_round

    loaded = load_round(packed / "seed=4", 2)
    assert loaded.row["sparsity"] == b[2]["sparsity"]
    from keras_sdd.analysis.replicates import find_records, group   # apps.report's view: one group, two seeds

    groups = group(find_records([packed]))
    assert len(groups) == 1 and sorted(groups[0].seeds) == [3, 4]


class Killed(Exception):
    pass


def _kill_at(monkeypatch, cls, name, n):
    """Make ``cls.name`` raise Killed right after its n-th call (1-based), as a kill -9 there would."""
    original = getattr(cls, name)
    calls = [0]

    def killing(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            raise Killed()
        return out
    monkeypatch.setattr(cls, name, killing)


def test_kill_anywhere_then_resume_equals_uninterrupted(tmp_path, tiny_config, monkeypatch):
    runner.run_study(tiny_config(tmp_path / "whole", replicates=2, retrain="weight_rewind"))
    cut = tmp_path / "cut"
    # 1. between the two replicates' pointer moves of round 0's second epoch checkpoint: replicate 0 at epoch
    #    2, replicate 1 still at epoch 1
    with monkeypatch.context() as m:
        _kill_at(m, checkpoints.StudyCheckpoints, "point", 3)
        with pytest.raises(Killed):
            runner.run_study(tiny_config(cut, replicates=2, retrain="weight_rewind"))
    assert checkpoints.read_pointer(cut / "seed=0").epoch == 2 and checkpoints.read_pointer(cut / "seed=1").epoch == 1
    # 2. resumed, then killed between the replicates' rows of round 1
    with monkeypatch.context() as m:
        _kill_at(m, records.RoundRecords, "append", 1 + 2)
        with pytest.raises(Killed):
            runner.run_study(tiny_config(cut, replicates=2, retrain="weight_rewind", resume=True))
    assert len(read_rounds(cut / "seed=0")) == 2 and len(read_rounds(cut / "seed=1")) == 1
    # 3. resumed, then killed in round 2 between the pointer moves of its round checkpoint
    with monkeypatch.context() as m:
        _kill_at(m, checkpoints.StudyCheckpoints, "point", 2 * 2 + 1)
        with pytest.raises(Killed):
            runner.run_study(tiny_config(cut, replicates=2, retrain="weight_rewind", resume=True))
    # 4. resumed to the end
    summary = runner.run_study(tiny_config(cut, replicates=2, retrain="weight_rewind", resume=True))
    assert summary["complete"]
    for seed in (0, 1):
        same_results(read_rounds(cut / f"seed={seed}"), read_rounds(tmp_path / "whole" / f"seed={seed}"))
    # a finished group resumes to nothing
    assert runner.run_study(tiny_config(cut, replicates=2, retrain="weight_rewind", resume=True))["complete"]


@pytest.mark.parametrize("change,says", [
    (dict(model="vgg_like"), "--model=vgg_like is not packed"),
    (dict(study="l2", l2_values=(0.1,)), "--study=l2 is not packed"),
    (dict(prune_method="tfmot_polynomial"), "--prune_method=tfmot_polynomial prunes inside tfmot"),
    (dict(mixed_precision="bfloat16"), "--mixed_precision=bfloat16 is not packed"),
    (dict(early_stop_patience=2), "--early_stop_patience is not packed"),
    (dict(replicates=0), "--replicates=0 is out of range"),
])
def test_refuses_what_it_cannot_pack(tmp_path, tiny_config, change, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        validate(tiny_config(tmp_path / "x", **{"replicates": 2, **change}))


def test_app_refuses_in_one_line_before_writing(tmp_path):
    res = subprocess.run([sys.executable, "-m", "apps.sdd", "--replicates=3", "--model=resnet18",
                          f"--logdir={tmp_path / 's'}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: --replicates=3: --model=resnet18 is not packed")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    """A real SIGKILL of the app mid-run (as soon as a replicate has a round-1 epoch checkpoint), then --resume."""
    import os
    import signal
    import time

    args = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=2000", "--gmm_test_size=300",
            "--model=fcn", "--width=16", "--epochs=6", "--batch_size=32", "--optimizer=adam",
            "--learning_rate=0.01", "--lr_schedule=cosine", "--prune_fraction=0.5", "--max_rounds=2",
            "--checkpoint_every_secs=0", "--threads=1", "--notrack_energy", "--replicates=3"]

    def app(logdir, *extra):
        log = open(tmp_path / f"{logdir.name}{len(extra)}.log", "w")   # a file: a full pipe would stall the app
        return subprocess.Popen([sys.executable, "-m", "apps.sdd", *args, f"--logdir={logdir}", *extra], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=log)

    assert app(tmp_path / "whole").wait(timeout=600) == 0
    cut = tmp_path / "cut"
    proc = app(cut)
    deadline = time.monotonic() + 600
    while not list(cut.glob("seed=*/checkpoints/epoch-r001-*.index")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = app(cut, "--resume")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "cut1.log").read_text()[-2000:]
    for seed in (0, 1, 2):
        same_results(read_rounds(cut / f"seed={seed}"), read_rounds(tmp_path / "whole" / f"seed={seed}"))


def test_lenet_on_mnist_packed_equals_separate(shared_data, tmp_path, tiny_config):
    """Images (normalised, flattened) through the stacked step: LeNet-300-100 on a 600-image MNIST subset."""
    mnist = dict(dataset="mnist", data_dir=str(shared_data / "tensorflow_datasets"), model="lenet300_100",
                 width=None, depth=None, train_subset=600, epochs=2, max_rounds=1, batch_size=100,
                 steps_per_execution=3, save_predictions=False)
    runner.run_study(tiny_config(tmp_path / "packed", replicates=2, **mnist))
    for seed in (0, 1):
        runner.run_study(tiny_config(tmp_path / f"alone{seed}", seed=seed, **mnist))
        mine, theirs = read_rounds(tmp_path / "packed" / f"seed={seed}"), read_rounds(tmp_path / f"alone{seed}")
        assert [r["sparsity"] for r in mine] == [r["sparsity"] for r in theirs]
        assert abs(mine[0]["train_noisy_loss"] - theirs[0]["train_noisy_loss"]) < 1e-5   # the dense round
        for a, b in zip(mine, theirs):   # float-level differences may flip a weight at the pruning threshold
            assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.01
            assert abs(a["train_noisy_loss"] - b["train_noisy_loss"]) < 1e-2
