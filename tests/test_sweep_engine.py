"""apps.sweep on Ray: every point once, resumable after the driver is killed, failures retried then reported,
a separately started Ray head joined by address, bad input refused before anything is written."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
        "--model=fcn", "--depth=1", "--epochs=2", "--batch_size=64", "--optimizer=adam", "--learning_rate=0.01",
        "--lr_schedule=cosine", "--prune_fraction=0.5", "--max_rounds=1", "--checkpoint_every_secs=0",
        "--notrack_energy", "--max_parallel=2"]
RAY = shutil.which("ray", path=str(pathlib.Path(sys.executable).parent)) or "ray"


#: Ray on loopback only (the tests' Ray head and drivers never use the machine's other addresses).
LOOPBACK = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled"}   # a loopback-only test cluster needs no token


def sweep(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "apps.sweep", *BASE, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=LOOPBACK)


def files(root: pathlib.Path):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()
            and p.name != "sweep.json"}


def test_every_point_runs_once_and_a_rerun_runs_none(tmp_path):
    root = tmp_path / "sw"
    done = sweep(f"--logdir={root}", "--grid=width=8,16;seed=0,1")
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((root / "sweep.json").read_text())
    assert state["grid"] == [["width", ["8", "16"]], ["seed", ["0", "1"]]]
    assert {k: v["status"] for k, v in state["points"].items()} == {
        "width=8,seed=0": "done", "width=8,seed=1": "done", "width=16,seed=0": "done", "width=16,seed=1": "done"}
    for name in state["points"]:
        d = root / name
        assert json.loads((d / "summary.json").read_text())["complete"]
        assert (d / "flags.txt").exists() and not list(d.glob("flags.resumed.*"))      # run exactly once
        assert f"--logdir={d}" in (d / "flags.txt").read_text()
    assert sum(line.startswith("[") for line in done.stdout.splitlines()) == 4
    before = files(root)
    again = sweep(f"--logdir={root}", "--grid=width=8,16;seed=0,1")
    assert again.returncode == 0 and "4 of 4 studies already finished" in again.stdout
    assert files(root) == before


def test_failing_study_retried_then_reported_while_the_rest_finish(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 40)
    np.savez(tmp_path / "good.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "bad.npz", x_train=x / 255.0, y_train=y, x_test=x[:10] / 255.0, y_test=y[:10])  # not uint8
    root = tmp_path / "sw"
    done = sweep(f"--logdir={root}", "--dataset=npz", f"--grid=data_path={tmp_path}/good.npz,{tmp_path}/bad.npz",
                 "--width=4", "--max_retries=1")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "1 of 2 studies failed" in done.stderr and "bad.npz" in done.stderr
    state = json.loads((root / "sweep.json").read_text())["points"]
    good = [v for k, v in state.items() if "good" in k][0]
    bad = [v for k, v in state.items() if "bad" in k][0]
    assert good["status"] == "done"
    assert bad["status"] == "failed" and bad["attempts"] == 2 and "uint8" in bad["error"]


def test_resume_after_killing_the_driver(tmp_path):
    root = tmp_path / "sw"
    args = [sys.executable, "-m", "apps.sweep", *BASE, f"--logdir={root}", "--grid=width=8,16,24;seed=0,1",
            "--max_parallel=1"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True, env=LOOPBACK)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        line = driver.stdout.readline()
        if line.startswith("[2/6]"):
            break
    os.killpg(driver.pid, signal.SIGKILL)   # the driver and the local Ray it started
    driver.wait()
    finished_before = {k for k, v in json.loads((root / "sweep.json").read_text())["points"].items()
                       if v["status"] == "done"}
    assert len(finished_before) >= 2
    kept = {name: (root / name / "flags.txt").stat().st_mtime_ns for name in finished_before}
    again = sweep(f"--logdir={root}", "--grid=width=8,16,24;seed=0,1", "--max_parallel=1")
    assert again.returncode == 0, again.stderr[-3000:]
    state = json.loads((root / "sweep.json").read_text())["points"]
    assert all(v["status"] == "done" for v in state.values())
    assert {name: (root / name / "flags.txt").stat().st_mtime_ns for name in finished_before} == kept
    assert sum(line.startswith("[") for line in again.stdout.splitlines()) == 6 - len(finished_before)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_separately_started_ray_head(tmp_path):
    port = _free_port()
    env = LOOPBACK
    start = subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                           capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        done = sweep(f"--logdir={tmp_path / 'sw'}", "--grid=seed=0,1", "--width=8",
                     f"--ray_address=127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"Ray at 127.0.0.1:{port}" in done.stdout
        state = json.loads((tmp_path / "sw" / "sweep.json").read_text())["points"]
        assert {v["status"] for v in state.values()} == {"done"}
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=env)


@pytest.mark.parametrize("args, message", [
    (["--grid=width=8,16;bogus=1"], "bogus is not a study setting"),
    (["--grid=logdir=a,b"], "logdir is not a study setting that can vary"),
    (["--grid=width=8,"], "empty value"),
    (["--grid=noise_rate=0.2,1.5"], "grid point noise_rate=1.5: .*noise_rate"),
    (["--grid=seed=0", "--ray_address=127.0.0.1:1"], "no Ray head answers there"),
    ([], "--grid is required"),
])
def test_bad_input_refused_before_anything_is_written(tmp_path, args, message):
    import re

    done = sweep(f"--logdir={tmp_path / 'sw'}", "--width=8", *args, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not (tmp_path / "sw").exists()
