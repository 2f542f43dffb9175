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


def test_registry_lists_the_kinds():
    assert kinds.STUDY_KINDS.names() == ["kd", "l2", "sdd"]
    with pytest.raises(ConfigError, match="unknown study kind 'sweepx'"):
        kinds.STUDY_KINDS.get("sweepx")


def test_l2_study_resumes_after_a_kill(tmp_path, kill_during):
    full = StudyConfig(**{**TINY, "study": "l2", "l2_values": (0.0, 0.01), "logdir": str(tmp_path / "full")})
    summary = runner.run_study(full)
    assert summary["complete"] and set(summary["members"]) == {"0", "0.01"}
    root = pathlib.Path(full.logdir)
    assert (root / "l2_curves.png").stat().st_size > 1000
    assert json.loads((root / "group.json").read_text())["members"] == {"0": "l2=0", "0.01": "l2=0.01"}
    assert json.loads((root / "l2=0.01" / "config.json").read_text())["l2"] == 0.01

    cut = full.replace(logdir=str(tmp_path / "cut"))
    with kill_during(1, 0, where="l2=0.01") as killed:
        with pytest.raises(killed):
            runner.run_study(cut)
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


# --- distillation ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_study(tmp_path_factory):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path_factory.mktemp("t") / "teacher"), "width": 32})
    runner.run_study(config)
    return pathlib.Path(config.logdir)


def _kd(tmp_path, teacher, **changes):
    return StudyConfig(**{**TINY, "study": "kd", "teacher": teacher, "logdir": str(tmp_path / "kd"), **changes})


@pytest.mark.parametrize("select, want_round", [("", 0), (":best", None), (":round=2", 2)])
def test_kd_study_from_each_teacher_source(tmp_path, teacher_study, select, want_round):
    summary = runner.run_study(_kd(tmp_path, f"{teacher_study}{select}"))
    teacher_rows = read_rounds(teacher_study)
    if want_round is None:
        vals = [r["val_accuracy"] for r in teacher_rows]
        want_round = vals.index(max(vals))
    info = summary["teacher"]
    assert info["round"] == want_round and info["source"] == str(teacher_study)
    assert info["test_accuracy"] == teacher_rows[want_round]["test_accuracy"]
    rows = read_rounds(pathlib.Path(tmp_path / "kd"))
    assert [r["round"] for r in rows] == [0, 1, 2] and summary["complete"]
    assert [round(r["sparsity"], 3) for r in rows] == [0.0, 0.5, 0.75]      # pruning is exact under distillation
    assert json.loads((tmp_path / "kd" / "summary.json").read_text())["teacher"] == info


def test_kd_teacher_from_a_saved_model_file(tmp_path, teacher_study):
    from keras_sdd.study import loading

    model = loading.load_round(teacher_study, 1, strip=True).model
    model.save(tmp_path / "teacher.keras")
    summary = runner.run_study(_kd(tmp_path, str(tmp_path / "teacher.keras"), max_rounds=1))
    assert summary["teacher"]["selected"] == "model file" and summary["complete"]


@pytest.mark.parametrize("teacher, message", [
    ("{d}/nothing", r"does not exist"),
    ("{d}/teacher:round=9", r"has no round 9"),
    ("{d}/bad.keras", r"cannot load a Keras model"),
    ("{d}/folder:best", r"is not a study directory"),
    ("{d}/wide:best", r"teacher takes inputs of shape \(12,\) but the student takes \(10,\)"),
])
def test_kd_bad_teacher_refused_before_anything_is_written(tmp_path, teacher_study, teacher, message):
    d = tmp_path / "src"
    d.mkdir()
    import shutil

    shutil.copytree(teacher_study, d / "teacher")
    (d / "bad.keras").write_bytes(b"not a model")
    (d / "folder").mkdir()
    runner.run_study(StudyConfig(**{**TINY, "gmm_dim": 12, "max_rounds": 1, "logdir": str(d / "wide")}))
    with pytest.raises(ConfigError, match=message):
        runner.run_study(_kd(tmp_path, teacher.format(d=d)))
    assert not (tmp_path / "kd").exists()


@pytest.mark.slow  # ~20 s: two studies in child processes
def test_teacher_flagfile_runs_the_teacher_study_first_then_is_idempotent(tmp_path):
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    flags = [f"--{k}={v}" for k, v in {**TINY, "max_rounds": 1}.items()]
    (tmp_path / "teacher.flags").write_text("\n".join(flags + ["--width=24"]) + "\n")
    kd = flags + [f"--logdir={tmp_path / 'kd'}", "--study=kd", f"--teacher={tmp_path / 'teacher'}:best",
                  f"--teacher_flagfile={tmp_path / 'teacher.flags'}"]
    app = [sys.executable, "-m", "apps.sdd"]
    done = subprocess.run(app + kd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "teacher" / "summary.json").read_text())["complete"]
    assert json.loads((tmp_path / "teacher" / "config.json").read_text())["width"] == 24
    summary = json.loads((tmp_path / "kd" / "summary.json").read_text())
    assert summary["complete"] and summary["teacher"]["source"] == str(tmp_path / "teacher")
    again = subprocess.run(app + kd + ["--resume"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already complete" in again.stderr


def test_early_stop_ends_the_pruning_and_resume_keeps_it(tmp_path):
    from keras_sdd.analysis import curves

    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "es"), "prune_fraction": 0.9, "max_rounds": 4,
                            "width": 8, "early_stop_patience": 1, "early_stop_tolerance": 0.0,
                            "track_energy": False})
    summary = runner.run_study(config)
    rows = read_rounds(pathlib.Path(config.logdir))
    offline = curves.early_stop(rows, patience=1, tolerance=0.0)
    assert summary["early_stop"]["fired"] and offline["fired"]
    assert len(rows) == summary["early_stop"]["stop_round"] + 1 == offline["stop_round"] + 1 < 5
    assert summary["complete"] and summary["early_stop"]["kept_round"] == offline["kept_round"]
    again = runner.run_study(config.replace(resume=True))
    assert again["early_stop"] == summary["early_stop"] and again["rounds_done"] == len(rows)
    assert len(read_rounds(pathlib.Path(config.logdir))) == len(rows)
