"""apps.sweep on Ray: every point once, resumable after the driver is killed, failures retried then reported,
a separately started Ray head joined by address, bad input refused before anything is written.

The sweeps are tiny (a 10-dimensional mixture, 2 epochs, 1–2 rounds): most of their time is each study's fresh
worker importing TensorFlow."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from keras_sdd.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
        "--model=fcn", "--depth=1", "--epochs=2", "--batch_size=64", "--optimizer=adam", "--learning_rate=0.01",
        "--lr_schedule=cosine", "--prune_fraction=0.5", "--max_rounds=1", "--checkpoint_every_secs=0",
        "--notrack_energy", "--max_parallel=2"]
RAY = shutil.which("ray", path=str(pathlib.Path(sys.executable).parent)) or "ray"
#: No cluster address from the environment: each test says where its studies run.
ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

pytest.importorskip("ray")


def sweep(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "apps.sweep", *BASE, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env or ENV)


def files(root: pathlib.Path):
    """Every file of the study folders: (mtime, bytes)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*")
            if p.is_file() and p.name != "sweep.json" and p.parts[len(root.parts)] != "logs"}


def progress(stdout: str):
    return [line for line in stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]


def test_every_point_runs_once_a_rerun_runs_none_and_changed_settings_are_refused(tmp_path):
    root = tmp_path / "sw"
    done = sweep(f"--logdir={root}", "--grid=width=8;seed=0,1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stderr.strip() == "", done.stderr[-2000:]             # Ray, TensorFlow: nothing on the console
    state = json.loads((root / "sweep.json").read_text())
    assert state["grid"] == [["width", ["8"]], ["seed", ["0", "1"]]]
    assert state["counts"] == {"done": 2, "running": 0, "pending": 0, "failed": 0}
    names = ["width=8,seed=0", "width=8,seed=1"]
    assert sorted(state["points"]) == sorted(names)
    for name in names:
        entry, d = state["points"][name], root / name
        assert entry["status"] == "done" and entry["attempts"] == 1 and entry["wall_s"] > 0
        assert json.loads((d / "summary.json").read_text())["complete"]
        assert not list(d.glob("flags.resumed.*"))                                  # run exactly once
        flags_txt = (d / "flags.txt").read_text()
        assert f"--logdir={d}\n" in flags_txt and "--threads=1\n" in flags_txt and "--grid" not in flags_txt
        assert "round 1/1" in (root / "logs" / f"{name}.log").read_text()
    lines = progress(done.stdout)
    assert len(lines) == 2 and {line.split()[1].rstrip(":") for line in lines} == set(names)
    assert all(re.search(r"best round \d of 1 \(.*% sparse, test .*%\), effective params \d+", line)
               for line in lines), lines
    assert lines[-1].startswith("[2/2]")
    assert len(list((root / "hparams").glob("events.out.tfevents.*"))) == 1   # the HParams experiment (test_board)

    before = files(root)
    again = sweep(f"--logdir={root}", "--grid=width=8;seed=0,1")
    assert again.returncode == 0 and "all 2 studies already finished" in again.stdout, again.stderr[-2000:]
    assert files(root) == before

    changed = sweep(f"--logdir={root}", "--grid=width=8;seed=0,1", "--epochs=3")
    assert changed.returncode == 2
    assert re.fullmatch(r"error: grid point width=8,seed=0: cannot resume .*--epochs: 2 -> 3.*\n", changed.stderr)
    assert files(root) == before


def _wait_for(path: pathlib.Path, proc, deadline: float) -> None:
    while not path.exists():
        assert proc.poll() is None, "the sweep ended before the driver could be killed"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow  # ~50 s on 2 cores: two sweeps, six study processes
def test_resume_after_killing_the_driver(tmp_path):
    """SIGKILL the driver alone (its local Ray and the study's worker are left to wind down) while the second
    study is mid-way; the same command again never reruns the first and resumes the second from its checkpoint
    (after the orphaned worker, if still alive, has let go of the point's lock)."""
    root = tmp_path / "sw"
    args = [f"--logdir={root}", "--grid=width=8,16", "--max_parallel=1", "--max_rounds=6", "--epochs=8",
            "--gmm_train_size=4000"]   # several seconds a study: the kill lands mid-study, and the orphaned
    #                                    worker is gone before it could finish the study on its own
    driver = subprocess.Popen([sys.executable, "-m", "apps.sweep", *BASE, *args], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=ENV)
    try:
        deadline = time.monotonic() + 240
        _wait_for(root / "width=16" / "checkpoints" / "latest.json", driver, deadline)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        state = json.loads((root / "sweep.json").read_text())["points"]
        assert state["width=8"]["status"] == "done" and state["width=16"]["status"] == "running"
        kept = files(root / "width=8")
        again = sweep(*args)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)     # what is left of the killed driver's local Ray
        except ProcessLookupError:
            pass
    assert "1 of 2 studies already finished; never rerun" in again.stdout, again.stdout
    assert [line.split()[1] for line in progress(again.stdout)] == ["width=16:"]
    assert files(root / "width=8") == kept                                  # not rerun: same files, same bytes
    assert (root / "width=16" / "flags.resumed.1.txt").exists()            # resumed, not restarted
    state = json.loads((root / "sweep.json").read_text())["points"]
    assert {k: (v["status"], v["attempts"]) for k, v in state.items()} == {
        "width=8": ("done", 1), "width=16": ("done", 2)}
    rows = (root / "width=16" / "rounds.csv").read_text().splitlines()
    assert len(rows) == 1 + 7                                                # header and rounds 0..6, once each


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 40)
    np.savez(tmp_path / "good.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "bad.npz", x_train=x / 255.0, y_train=y, x_test=x[:10] / 255.0, y_test=y[:10])  # not uint8


@pytest.mark.slow  # ~30 s: a Ray head of its own
def test_on_a_separately_started_ray_head_a_failing_study_is_retried_then_reported(tmp_path):
    """A Ray head started apart (`ray start --head --block`, stopped by signalling that process: no `ray stop`,
    which would stop every Ray on the machine), joined by address; one study fails at its start every time: it is
    retried once, marked failed with its error, the other finishes, exit code 3 names the failed point."""
    _npz(tmp_path)
    port = _free_port()
    head_env = {**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_AUTH_MODE": "disabled"}      # a loopback-only test cluster needs no token
    head = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--ray-client-server-port={_free_port()}"], cwd=tmp_path, env=head_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from keras_sdd.sweep import engine

        deadline = time.monotonic() + 120
        while True:
            try:
                engine.check_address(f"127.0.0.1:{port}")
                break
            except ConfigError:
                assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
                time.sleep(0.5)
        root = tmp_path / "sw"
        done = sweep(f"--logdir={root}", "--dataset=npz", "--width=4", "--max_retries=1",
                     f"--grid=data_path={tmp_path}/good.npz,{tmp_path}/bad.npz", f"--ray_address=127.0.0.1:{port}",
                     env={**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    finally:
        head.send_signal(signal.SIGTERM)      # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"at a time on Ray at 127.0.0.1:{port}" in done.stdout
    bad = f"data_path={str(tmp_path / 'bad.npz').replace('/', '_')}"
    good = f"data_path={str(tmp_path / 'good.npz').replace('/', '_')}"
    assert done.stderr.splitlines() == [f"error: 1 of 2 studies failed: {bad} (see {root}/sweep.json and "
                                        f"{root}/logs/)"]
    assert re.search(rf"\[retry\] {re.escape(bad)}: attempt 1 failed \(.*uint8.*\); trying again \(2 of 2\)",
                     done.stdout)
    assert re.search(rf"\[\d/2\] {re.escape(bad)}: FAILED after 2 attempt\(s\): ConfigError: .*uint8", done.stdout)
    state = json.loads((root / "sweep.json").read_text())
    assert state["counts"] == {"done": 1, "running": 0, "pending": 0, "failed": 1}
    assert state["points"][good]["status"] == "done" and state["points"][good]["attempts"] == 1
    assert state["points"][bad]["status"] == "failed" and state["points"][bad]["attempts"] == 2
    assert "uint8" in state["points"][bad]["error"]
    assert (root / "logs" / f"{bad}.log").read_text().count("Traceback") == 2


@pytest.mark.parametrize("args, message", [
    (["--grid=width=8,16;bogus=1"], "bogus is not a study setting"),
    (["--grid=logdir=a,b"], "logdir is not a study setting that can vary"),
    (["--grid=width=8,"], "axis width has an empty value list or an empty value"),
    (["--grid=width"], "'width' is not of the form name=value1,value2"),
    (["--grid=noise_rate=0.2,1.5"], "grid point noise_rate=1.5: .*--noise_rate must lie in"),
    (["--grid=width=8,8.0"], "points width=8 and width=8.0 are the same study"),
    (["--grid=seed=0", "--ray_address=127.0.0.1:1"], "127.0.0.1:1: no Ray head answers there"),
    (["--grid=seed=0", "--resume"], "--resume: there is no sweep in"),
    ([], "--grid is required"),
])
def test_bad_input_refused_before_anything_is_written(tmp_path, args, message):
    done = sweep(f"--logdir={tmp_path / 'sw'}", "--width=8", *args, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]) and lines[0].startswith("error: "), lines
    assert not (tmp_path / "sw").exists()


def test_check_address_needs_a_ray_head_answering(monkeypatch):
    from keras_sdd.sweep import engine

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept()[0].recv(64), daemon=True).start()   # listens, never answers
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="something listens there but it is not a Ray head"):
        engine.check_address(f"127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - t0 < 5
    server.close()
    with pytest.raises(ConfigError, match="must be HOST:PORT"):
        engine.check_address("localhost")
    with pytest.raises(ConfigError, match="Ray Client"):
        engine.check_address("ray://10.0.0.1:10001")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"--ray_address=auto \(127.0.0.1:{port}\): no Ray head answers"):
        engine.check_address("auto")


def test_sweep_state_comes_from_the_study_folders(tmp_path):
    from keras_sdd.sweep import engine

    root = tmp_path / "sw"
    pts = [engine.Point({"seed": str(s)}, f"seed={s}", {"logdir": str(root / f"seed={s}")}, "") for s in (0, 1)]
    (root / "seed=0").mkdir(parents=True)
    (root / "seed=0" / "summary.json").write_text('{"complete": true}')
    (root / "sweep.json").write_text(json.dumps({"grid": [], "points": {
        "seed=0": {"status": "running", "attempts": 3}, "seed=1": {"status": "done", "attempts": 1},
        "seed=9": {"status": "done", "attempts": 1}}}))      # an earlier grid's point: kept, not counted
    s = engine.Sweep(root, {"seed": ["0", "1"]}, pts)
    assert [p.name for p in s.todo()] == ["seed=1"]           # its folder is not complete, whatever was recorded
    assert s.state["seed=0"]["status"] == "done" and s.state["seed=0"]["attempts"] == 3
    s.save()
    saved = json.loads((root / "sweep.json").read_text())
    assert saved["counts"] == {"done": 1, "running": 0, "pending": 1, "failed": 0} and "seed=9" in saved["points"]
    (root / "sweep.json").write_text("{")
    with pytest.raises(ConfigError, match="sweep.json is damaged"):
        engine.Sweep(root, {"seed": ["0", "1"]}, pts)
