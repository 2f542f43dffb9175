"""Seed 2 Table 1 on real MNIST: the paper-2 width sweep builds 784→w→100→10, whose round-0 kernel count is the
paper's "Full" column exactly, and apps.report gives those as the full models' parameters (1 epoch, 1 round)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from keras_sdd.study.records import read_rounds

REPO = pathlib.Path(__file__).resolve().parents[1]
TABLE1_FULL = {50: 45_200, 100: 89_400}        # seed 2 Table 1, MNIST "Full" parameters
pytest.importorskip("ray")
pytestmark = pytest.mark.slow   # about 1–5 minutes: two MNIST studies in Ray workers, then the report


def test_mnist_width_sweep_counts_table1_full_params(shared_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["KERAS_SDD_DATA_DIR"] = str(shared_data)
    root = tmp_path / "mnist"
    done = subprocess.run(
        [sys.executable, "-m", "apps.sweep", "--flagfile=configs/sweeps/mnist_fcn_widths.flags",
         "--grid=width=50,100;seed=0", f"--logdir={root}", "--epochs=1", "--max_rounds=1", "--max_parallel=2",
         "--notrack_energy", "--nosave_predictions", "--checkpoint_every_secs=600"],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for w, full in TABLE1_FULL.items():
        study = root / f"width={w},seed=0"
        config = json.loads((study / "config.json").read_text())
        assert (config["noise_type"], config["keep_output_dense"], config["hidden"]) == ("uniform", True, [100])
        rows = read_rounds(study)
        assert len(rows) == 2 and rows[0]["nonzero_weights"] == full
        # seed 1's convention: every round the dense cost, 3 × 2 × kernel MACs × examples × epochs (±10 %)
        n = json.loads((study / "summary.json").read_text())["dataset"]["train_size"]
        assert rows[0]["train_flops_dense"] == rows[1]["train_flops_dense"] >= rows[1]["train_flops"]
        assert rows[0]["train_flops_dense"] == pytest.approx(3 * 2 * full * n * 1, rel=0.10)
    report = subprocess.run([sys.executable, "-m", "apps.report", f"--logdir={root}", f"--out={tmp_path / 'rep'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    widths = {row["width"]: row for row in json.loads((tmp_path / "rep" / "analysis.json").read_text())["width_table"]}
    assert {w: widths[w]["full_params"]["mean"] for w in TABLE1_FULL} == TABLE1_FULL
    tables = (tmp_path / "rep" / "tables.md").read_text()
    assert "45,200" in tables and "89,400" in tables and "non-zero kernel weights" in tables
