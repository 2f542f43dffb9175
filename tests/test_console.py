"""The console: one line and exit code 2 for any bad input; a run shows only its own short lines.

Most tests run a tiny absl app of their own (``APP``, through ``python -c``) so that they do not depend on the
study app; the last ones run ``apps.sdd`` end to end."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
        "--model=fcn", "--width=16", "--depth=1", "--epochs=2", "--batch_size=64", "--max_rounds=1",
        "--checkpoint_every_secs=0", "--optimizer=adam", "--lr_schedule=cosine", "--learning_rate=0.01",
        "--threads=1", "--notrack_energy"]

#: An app wired as the apps are: quiet_native_logs() first, parse_flags, configure_logging(), refuse().
APP = r"""
import sys, warnings
from keras_sdd import console
console.quiet_native_logs()
from absl import app, flags, logging
import keras_sdd
FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 1, "A count.", lower_bound=0)
flags.DEFINE_string("mode", "plain", "plain|tf|refuse|crash")
flags.DEFINE_string("ckpt", "", "Checkpoint path prefix (mode tf).")
flags.register_validator("mode", lambda v: v in ("plain", "tf", "refuse", "crash"),
                         message="--mode must be plain, tf, refuse or crash")

def main(argv):
    console.configure_logging()
    if FLAGS.mode == "refuse":
        console.refuse(keras_sdd.ConfigError("bad input,\nsecond line"))
    logging.info("hello %d", FLAGS.n)
    if FLAGS.mode == "tf":
        import tensorflow as tf   # native start-up lines; cuInit on a CPU-only CUDA build
        tf.config.list_physical_devices()
        tf.train.Checkpoint(v=tf.Variable(1.0)).write(FLAGS.ckpt)   # 'Sharding callback duration'
        warnings.warn("careful")
        logging.warning("watch out")
    if FLAGS.mode == "crash":
        import os
        os.write(2, b"I0000 00:00:1.0   1 x.cc:1] dropped\nF0000 00:00:1.0   1 x.cc:1] Check failed: kept\n")
        os.abort()
    print("done")

app.run(main, flags_parser=console.parse_flags)
"""


def tiny(*args, timeout=180):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", APP, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def sdd(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "apps.sdd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--bogus=1"], "error: Unknown command line flag 'bogus'"),
    (["--mdoe=tf"], "error: Unknown command line flag 'mdoe'. Did you mean: mode ?"),
    (["--n=abc"], "error: flag --n=abc: invalid literal for int() with base 10: 'abc'"),
    (["--n=-1"], "error: flag --n=-1: -1 is not a non-negative integer"),
    (["--mode=other"], "error: flag --mode=other: --mode must be plain, tf, refuse or crash"),
    (["stray", "x"], "error: unexpected argument(s): stray x (flags take the form --name=value; see --helpfull)"),
    (["--flagfile=/nonexistent.flags"], "error: Unable to open flagfile: [Errno 2] No such file or directory: "
                                        "'/nonexistent.flags'"),
    (["--mode=refuse"], "error: bad input, second line"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = tiny(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [message] and done.stdout == ""


@pytest.mark.parametrize("flag", ["--helpfull", "--help"])
def test_help_still_works_and_exits_0(flag):
    done = tiny(flag)
    assert done.returncode == 0, done.stderr
    assert "--mode: plain|tf|refuse|crash" in done.stdout and done.stderr == ""


def test_a_run_shows_only_its_own_lines(tmp_path):
    done = tiny("--mode=tf", "--n=7", f"--ckpt={tmp_path / 'ckpt'}")
    assert done.returncode == 0, done.stderr
    for noise in ("cuInit", "Sharding callback", "oneDNN", "absl::InitializeLog", "cuda drivers", "To enable",
                  ".py:", ".cc:"):
        assert noise not in done.stderr, (noise, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and re.fullmatch(r"\d\d:\d\d:\d\d hello 7", lines[0]), lines
    assert lines[1:] == ["warning: careful", "warning: watch out"]
    assert done.stdout == "done\n"


@pytest.mark.parametrize("how", ["flag", "flagfile"])
def test_verbosity_brings_everything_back(how, tmp_path):
    (tmp_path / "v.flags").write_text("# verbose\n--verbosity=0\n")
    arg = "--verbosity=0" if how == "flag" else f"--flagfile={tmp_path / 'v.flags'}"
    done = tiny("--mode=tf", arg, f"--ckpt={tmp_path / 'ckpt'}")
    assert done.returncode == 0, done.stderr
    assert "Sharding callback" in done.stderr                    # tensorflow's Python INFO lines
    assert re.search(r"^I\d{4} [\d:.]+ +\d+ \S+:\d+\] hello 1$", done.stderr, re.M)         # absl's prefix
    assert re.search(r"^[IWE]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\] ", done.stderr, re.M)          # native lines


def test_what_comes_before_a_crash_still_comes_out():
    """The filter is its own process: a fatal native line written just before an abort is not lost."""
    done = tiny("--mode=crash")
    assert done.returncode != 0
    assert "Check failed: kept" in done.stderr and "dropped" not in done.stderr


def test_verbosity_is_read_from_the_command_line_and_flagfiles(tmp_path):
    from keras_sdd import console

    (tmp_path / "a.flags").write_text(f"--flagfile={tmp_path / 'b.flags'}\n")
    (tmp_path / "b.flags").write_text("--verbosity=1\n")
    assert console._verbose(["--verbosity=0"]) and console._verbose(["-v", "1"]) and console._verbose(["--v=2"])
    assert console._verbose([f"--flagfile={tmp_path / 'a.flags'}"])
    assert not console._verbose([]) and not console._verbose(["--verbosity=-1"])
    assert not console._verbose(["--", "--verbosity=1"]) and not console._verbose(["--flagfile=/missing"])
    assert not console._verbose([f"--flagfile={tmp_path / 'a.flags'}", "--verbosity=-1"])


# ------------------------------------------------------------------ the study app, end to end
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


def test_study_verbosity_brings_the_rest_back(tmp_path):
    done = sdd(*TINY, f"--logdir={tmp_path / 's'}", "--verbosity=0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Sharding callback" in done.stderr or ".py:" in done.stderr
