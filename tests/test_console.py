"""The console: one line and exit code 2 for any bad input; a study shows only its own short lines."""
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
        "--model=fcn", "--width=16", "--depth=1", "--epochs=2", "--batch_size=64", "--max_rounds=1",
        "--checkpoint_every_secs=0", "--optimizer=adam", "--lr_schedule=cosine", "--learning_rate=0.01", "--threads=1", "--notrack_energy"]


def sdd(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "apps.sdd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--bogus=1"], "Unknown command line flag 'bogus'"),
    (["stray"], "unexpected argument(s): stray (flags take the form --name=value; see --helpfull)"),
    (["--noise_rate=2"], "--noise_rate must lie in [0, 1)"),
    (["--study=kd"], "--study=kd needs --teacher"),
    (["--dataset=imagenet"], "unknown dataset 'imagenet'"),
])
def test_every_refusal_is_one_line_and_exit_2(args, message, tmp_path):
    done = sdd(*args, f"--logdir={tmp_path / 's'}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "s").exists()


def test_a_study_prints_only_its_own_short_lines(tmp_path):
    done = sdd(*TINY, f"--logdir={tmp_path / 's'}")
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("cuInit", "Sharding callback", "oneDNN", "absl::InitializeLog", "cuda drivers", ".py:"):
        assert noise not in done.stderr, noise
    lines = done.stderr.strip().splitlines()
    assert all(re.match(r"^\d\d:\d\d:\d\d (study|round) ", line) for line in lines), lines
    assert len(lines) == 3 and "study written to" in done.stdout


def test_verbosity_brings_the_rest_back(tmp_path):
    done = sdd(*TINY, f"--logdir={tmp_path / 's'}", "--verbosity=0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Sharding callback" in done.stderr or ".py:" in done.stderr
