"""apps.report over a mix of an old-style study (the first release's columns) and new ones; bad input refused."""
import csv
import json
import pathlib
import subprocess
import sys

import pytest

from keras_sdd.config import StudyConfig
from keras_sdd.study import runner
from keras_sdd.study.records import NAMES

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0, threads=1,
            track_energy=False)


def report(*args):
    return subprocess.run([sys.executable, "-m", "apps.report", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    base = tmp_path_factory.mktemp("r")
    for seed in (0, 1):
        runner.run_study(StudyConfig(**{**TINY, "seed": seed, "logdir": str(base / f"new{seed}")}))
    # An old-style study: the first release's rounds.csv columns, config without the newer settings.
    old = base / "old"
    runner.run_study(StudyConfig(**{**TINY, "noise_rate": 0.3, "logdir": str(old)}))
    first_release = NAMES[:NAMES.index("per_layer_sparsity") + 1]
    with open(old / "rounds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(old / "rounds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=first_release, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    config = json.loads((old / "config.json").read_text())
    for key in ("teacher", "kd_alpha", "ece_bins", "track_energy", "early_stop_patience"):
        config.pop(key, None)
    (old / "config.json").write_text(json.dumps(config))
    return base


def test_report_over_old_and_new_studies(studies, tmp_path):
    out = tmp_path / "rep"
    done = report(f"--logdir={studies}/new*", f"--logdir={studies / 'old'}", f"--out={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    analysis = json.loads((out / "analysis.json").read_text())
    assert len(analysis["studies"]) == 3
    groups = {tuple(sorted(g["seeds"])): g for g in analysis["groups"]}
    assert set(groups) == {(0, 1), (0,)}                       # two seeds grouped; the ε=0.3 study apart
    from keras_sdd.study.records import read_rounds
    rows = [read_rounds(studies / f"new{s}") for s in (0, 1)]
    full = [r for r in analysis["cost_table"] if r["variant"] == "full pruning" and r["replicates"] == 2][0]
    flops = [x[-1]["train_flops_cum"] / 1e15 for x in rows]
    assert full["train_pflops"]["mean"] == pytest.approx(sum(flops) / 2)
    best = []
    for x in rows:
        vals = [r["val_accuracy"] for r in x]
        best.append(x[vals.index(max(vals))]["test_accuracy"])
    assert full["test_accuracy"]["mean"] == pytest.approx(sum(best) / 2)
    tables = (out / "tables.md").read_text()
    assert "no calibration recorded by: " + str(studies / "old") in tables and "n/a" in tables
    assert {"figures/accuracy_vs_params.png", "figures/ece_vs_sparsity.png",
            "figures/reliability_dense_vs_best.png", "figures/bayes_vs_model.png"} <= set(analysis["figures"])
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    # the old study recorded neither kernel counts nor dense FLOPs: recounted from its checkpoints, read only
    old_group = [g for g in analysis["lottery_table"] if g["replicates"] == 1][0]
    assert old_group["full_params"]["mean"] == 10 * 16 + 16 * 2 and old_group["params_columns"] == ["nonzero_weights"]
    assert "recounted from the round checkpoints" in tables and "PFLOPs dense (seed 1)" in tables
    old_cost = [r for r in analysis["cost_table"] if r["replicates"] == 1 and r["variant"] == "full pruning"][0]
    assert old_cost["train_pflops_dense"]["mean"] == pytest.approx(full["train_pflops_dense"]["mean"])
    assert "rounds.csv" not in [p.name for p in (studies / "old").iterdir() if p.stat().st_mtime > out.stat().st_mtime]
    again = report(f"--logdir={studies / 'old'}", f"--out={out}")     # a previous report may be replaced
    assert again.returncode == 0, again.stderr[-2000:]


@pytest.mark.parametrize("args, message", [
    (["--logdir={tmp}/nothing"], "no such directory"),
    (["--logdir={tmp}/empty"], "holds no study"),
    (["--logdir={studies}/new0", "--out={tmp}/foreign"], "is not an empty folder or a previous report"),
    ([], "give at least one --logdir"),
])
def test_bad_input_one_line_exit_2_nothing_written(studies, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "mine.txt").write_text("user data")
    args = [a.format(tmp=tmp_path, studies=studies) for a in args]
    if not any(a.startswith("--out") for a in args):
        args.append(f"--out={tmp_path / 'out'}")
    done = report(*args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in (tmp_path / "foreign").iterdir()) == ["mine.txt"]
