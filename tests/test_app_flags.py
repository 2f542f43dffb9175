"""apps/sdd.py: every flag validator refuses its bad values at parse time; flags map onto StudyConfig."""
import pathlib
import subprocess
import sys

import pytest
from absl import flags

from apps import sdd
REPO = pathlib.Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS


def parse(*args):
    FLAGS.unparse_flags()
    return FLAGS(["sdd", *args])


@pytest.fixture(autouse=True)
def _reset_flags():
    yield
    FLAGS.unparse_flags()


@pytest.mark.parametrize("arg", [
    "--noise_rate=1.0", "--noise_rate=-0.2", "--prune_fraction=0", "--prune_fraction=1",
    "--final_sparsity=1.0", "--learning_rate=0", "--finetune_lr=-1", "--momentum=1.0", "--momentum=-0.1",
    "--lr_gamma=0", "--lr_gamma=1.5", "--gmm_bayes_accuracy=0.5", "--gmm_bayes_accuracy=1", "--width=0",
    "--depth=0", "--logdir=", "--hidden=300,abc", "--hidden=0", "--milestones=80,x", "--milestones=-5",
    "--seed=-1", "--train_subset=-1", "--val_fraction=-0.1", "--val_fraction=1", "--max_rounds=-1",
    "--prune_frequency=0", "--rewind_step=-1", "--finetune_epochs=-1", "--weight_decay=-1", "--l2=-1",
    "--epochs=0", "--batch_size=0", "--steps_per_execution=0", "--checkpoint_every_secs=-1",
    "--eval_every_epochs=-1", "--dropout=1", "--gmm_dim=1", "--gmm_train_size=1", "--gmm_test_size=0",
    "--vit_patch_size=0", "--vit_heads=0", "--vit_mlp_dim=0",
    "--study=distill", "--kd_alpha=1.5", "--kd_alpha=-0.1", "--kd_temperature=0", "--ece_bins=0",
    "--resume_from_round=-2", "--early_stop_tolerance=2", "--early_stop_patience=-1", "--noise_type=asym", "--augment=mixup", "--gmm_task=circle", "--retrain=rewind",
    "--optimizer=rmsprop", "--lr_schedule=step",
])
def test_validator_refuses(arg):
    with pytest.raises(flags.IllegalFlagValueError):
        parse(arg)


def test_flags_to_config():
    parse("--hidden=300,100", "--milestones=3,6", "--epochs=8", "--classes=3,8", "--noise_rate=0.1",
          "--model=fcn", "--retrain=finetune", "--finetune_epochs=2")
    c = sdd.config_from_flags()
    assert c.hidden == (300, 100) and c.milestones == (3, 6) and c.classes == ("3", "8")
    assert c.noise_rate == 0.1 and c.round_epochs == 2


def test_every_config_field_has_a_flag():
    from keras_sdd.config import StudyConfig
    import dataclasses

    parse()
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    assert names <= set(FLAGS), sorted(names - set(FLAGS))
    assert sdd.config_from_flags() == StudyConfig()


def run_app(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "apps.sdd", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_bad_input_one_clear_line(tmp_path):
    res = run_app("--dataset=nope", f"--logdir={tmp_path / 'x'}")
    assert res.returncode == 2
    assert "error: unknown dataset 'nope'; valid choices:" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()  # refused before any work


def test_existing_study_not_damaged(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    (study / "config.json").write_text("{}")
    (study / "rounds.csv").write_text("precious\n")
    res = run_app(f"--logdir={study}")
    assert res.returncode == 2 and "already holds a study; pass --resume" in res.stderr
    assert (study / "rounds.csv").read_text() == "precious\n"


def test_unprepared_dataset_refused_and_nothing_written(tmp_path):
    empty = tmp_path / "tfds"
    empty.mkdir()
    res = run_app("--dataset=mnist", "--model=lenet300_100", f"--data_dir={empty}", f"--logdir={tmp_path / 's'}")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: dataset 'mnist' is not prepared") and "--data_dir" in last and "--download" in last
    assert not (tmp_path / "s").exists()  # a corrected re-run is not blocked by a half-made study
