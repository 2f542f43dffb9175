"""A damaged or unusual study directory is refused with one clear message and left byte-identical; explicit
recovery (--resume_from_round) works; refusals come before anything is written."""
import hashlib
import pathlib
import shutil
import subprocess
import sys

import pytest

from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig
from keras_sdd.study import runner
from keras_sdd.study.records import TIME_FIELDS, read_rounds

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0, threads=1)


class _Kill(Exception):
    pass


def digest(root: pathlib.Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A study killed in round 2 after its epoch-1 checkpoint (rows 0..1 recorded), and the same study run
    through uninterrupted, for comparison."""
    base = tmp_path_factory.mktemp("d")
    full = StudyConfig(**{**TINY, "logdir": str(base / "full")})
    runner.run_study(full)
    cut = full.replace(logdir=str(base / "cut"))
    original = runner._EpochCheckpoint.on_epoch_end

    def killing(self, epoch, logs=None):   # module-scoped, so the function-scoped kill_during cannot serve
        original(self, epoch, logs)
        if self.round_index == 2 and epoch == 0:
            raise _Kill()
    runner._EpochCheckpoint.on_epoch_end = killing
    try:
        with pytest.raises(_Kill):
            runner.run_study(cut)
    finally:
        runner._EpochCheckpoint.on_epoch_end = original
    return full, cut


@pytest.fixture
def copy(interrupted, tmp_path):
    _, cut = interrupted
    dst = tmp_path / "study"
    shutil.copytree(cut.logdir, dst)
    return cut.replace(logdir=str(dst), resume=True)


def _refused(config, message):
    root = pathlib.Path(config.logdir)
    before = digest(root)
    with pytest.raises(ConfigError, match=message):
        runner.run_study(config)
    assert digest(root) == before


def test_interrupted_state(copy):
    root = pathlib.Path(copy.logdir)
    assert len(read_rounds(root)) == 2
    assert (root / "checkpoints" / "epoch-r002-e0001.index").exists()


def test_damaged_epoch_checkpoint_offers_resume_from_round(copy, interrupted):
    data = next((pathlib.Path(copy.logdir) / "checkpoints").glob("epoch-r002-e0001.data-*"))
    data.write_bytes(data.read_bytes()[:20])
    _refused(copy, r"epoch-r002-e0001 is damaged.*intact: pass --resume_from_round=1 to restart round 2")
    _refused(copy.replace(resume_from_round=0), r"only the last recorded round \(1\)")
    runner.run_study(copy.replace(resume_from_round=1))
    full = read_rounds(pathlib.Path(interrupted[0].logdir))
    got = read_rounds(pathlib.Path(copy.logdir))
    assert len(got) == 4
    for a, b in zip(full, got):   # restarting round 2 from round 1's checkpoint is the uninterrupted path
        assert {k: v for k, v in a.items() if k not in TIME_FIELDS} == {k: v for k, v in b.items()
                                                                        if k not in TIME_FIELDS}


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "checkpoints" / "epoch-r002-e0001.index").unlink(), r"is missing.*--resume_from_round=1"),
    (lambda r: (r / "checkpoints" / "latest.json").write_text("{garbage"), r"latest.json is damaged"),
    (lambda r: (r / "config.json").write_text("not json"), r"config.json is damaged"),
    (lambda r: (r / "rounds.csv").write_text((r / "rounds.csv").read_text()[:-15]), r"last row is truncated"),
    (lambda r: [p.unlink() for p in (r / "checkpoints").glob("round-001.*")]
     + [(r / "checkpoints" / "epoch-r002-e0001.index").unlink()], r"no intact checkpoint to resume from"),
])
def test_damage_refused_and_directory_untouched(copy, damage, message):
    damage(pathlib.Path(copy.logdir))
    _refused(copy, message)


def test_bad_locations_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "file" / "study")})
    with pytest.raises(ConfigError, match=r"is a file, not a folder"):
        runner.run_study(config)
    with pytest.raises(ConfigError, match=r"no study in .* to resume"):
        runner.run_study(config.replace(logdir=str(tmp_path / "typo"), resume=True))
    assert not (tmp_path / "typo").exists()


def test_finished_study_resume_writes_nothing(interrupted):
    full, _ = interrupted
    root = pathlib.Path(full.logdir)
    before = digest(root)
    summary = runner.run_study(full.replace(resume=True))
    assert summary["complete"] and digest(root) == before


def test_rewind_step_checked_before_anything_is_written(tmp_path):
    # 360 training points, batch 64: 6 steps an epoch, 18 in the dense run.
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "s"), "retrain": "weight_rewind"})
    with pytest.raises(ConfigError, match=r"--rewind_step=19 is beyond the 18 steps of the dense run"):
        runner.run_study(config.replace(rewind_step=19))
    with pytest.raises(ConfigError, match=r"nearest valid values: 4, 6"):
        runner.run_study(config.replace(rewind_step=5, steps_per_execution=4))
    assert not (tmp_path / "s").exists()


def test_app_refusal_is_one_line_exit_2_and_resumes_are_numbered(copy):
    root = pathlib.Path(copy.logdir)
    (root / "checkpoints" / "latest.json").write_text("{garbage")
    before = digest(root)
    args = [f"--{k}={v}" for k, v in TINY.items()] + [f"--logdir={root}", "--resume"]
    done = subprocess.run([sys.executable, "-m", "apps.sdd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {root / 'checkpoints' / 'latest.json'} is damaged (JSONDecodeError); it should name the latest "
        "checkpoint"]
    assert digest(root) == before


def _events(root: pathlib.Path):
    """Sorted (run, tag, step) of every TensorBoard event under root/tensorboard."""
    import tensorflow as tf

    out = []
    for path in (root / "tensorboard").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            out += [(path.parent.name, v.tag, event.step) for v in event.summary.value]
    return sorted(out)


def test_resumed_tensorboard_matches_uninterrupted(copy, interrupted):
    runner.run_study(copy)
    full = _events(pathlib.Path(interrupted[0].logdir))
    assert _events(pathlib.Path(copy.logdir)) == full        # same tags and steps, no duplicates, no gaps
    assert sum(1 for run, tag, _ in full if tag == "sdd_curve") == 1
    resumed = sorted(p.name for p in pathlib.Path(copy.logdir).glob("flags*.txt"))
    assert resumed == []                                      # library calls without record files write none
