"""Study kinds from the registry: l2 (one study per λ, resumable as a whole, combined curve)."""
import json
import pathlib

import pytest

from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig
from keras_sdd.study import kinds, runner
from keras_sdd.study.records import TIME_FIELDS, read_rounds

TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=2, checkpoint_every_secs=0.0, threads=1)


class _Kill(Exception):
    pass


def test_registry_lists_the_kinds():
    assert kinds.STUDY_KINDS.names() == ["kd", "l2", "sdd"]
    with pytest.raises(ConfigError, match="unknown study kind 'sweepx'"):
        kinds.STUDY_KINDS.get("sweepx")


def test_l2_study_resumes_after_a_kill(tmp_path):
    full = StudyConfig(**{**TINY, "study": "l2", "l2_values": (0.0, 0.01), "logdir": str(tmp_path / "full")})
    summary = runner.run_study(full)
    assert summary["complete"] and set(summary["members"]) == {"0", "0.01"}
    root = pathlib.Path(full.logdir)
    assert (root / "l2_curves.png").stat().st_size > 1000
    assert json.loads((root / "group.json").read_text())["members"] == {"0": "l2=0", "0.01": "l2=0.01"}
    assert json.loads((root / "l2=0.01" / "config.json").read_text())["l2"] == 0.01

    cut = full.replace(logdir=str(tmp_path / "cut"))
    original = runner._EpochCheckpoint.on_epoch_end

    def killing(self, epoch, logs=None):
        original(self, epoch, logs)
        if "l2=0.01" in str(self.ckpts.dir) and self.round_index == 1 and epoch == 0:
            raise _Kill()
    runner._EpochCheckpoint.on_epoch_end = killing
    try:
        with pytest.raises(_Kill):
            runner.run_study(cut)
    finally:
        runner._EpochCheckpoint.on_epoch_end = original
    with pytest.raises(ConfigError, match="already holds a study; pass --resume"):
        runner.run_study(cut)
    runner.run_study(cut.replace(resume=True))
    for lam in ("l2=0", "l2=0.01"):
        a, b = read_rounds(root / lam), read_rounds(pathlib.Path(cut.logdir) / lam)
        assert len(a) == len(b) == 3
        for ra, rb in zip(a, b):
            assert {k: v for k, v in ra.items() if k not in TIME_FIELDS} == \
                   {k: v for k, v in rb.items() if k not in TIME_FIELDS}
    # ℓ2 moves the results: the two members differ
    assert read_rounds(root / "l2=0")[0]["train_noisy_loss"] != read_rounds(root / "l2=0.01")[0]["train_noisy_loss"]


def test_l2_refusals(tmp_path):
    config = StudyConfig(**{**TINY, "study": "l2", "l2_values": (0.0,), "logdir": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="no study in .* to resume"):
        runner.run_study(config.replace(resume=True))
    with pytest.raises(ConfigError, match="--study=l2 needs --l2_values"):
        runner.run_study(config.replace(l2_values=()))
    assert not (tmp_path / "x").exists()
