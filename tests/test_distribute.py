"""Studies across devices on a CPU: MirroredStrategy on two logical devices (and its resume), and two workers on
loopback (MultiWorkerMirroredStrategy via TF_CONFIG), each against the single-device study: the same sparsity per
round exactly, accuracy within noise."""
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--dataset=gaussian_mixture", "--gmm_dim=10", "--gmm_train_size=400", "--gmm_test_size=300",
        "--noise_rate=0.2", "--model=fcn", "--width=16", "--depth=1", "--epochs=3", "--batch_size=64",
        "--optimizer=adam", "--learning_rate=0.01", "--lr_schedule=cosine", "--prune_fraction=0.5",
        "--max_rounds=2", "--checkpoint_every_secs=0", "--notrack_energy"]
NOISE = 0.05   # accuracy on 300 test points: replicas sum gradients in another order


def _same_study(a, b, exact=False):
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        assert ra["pruned_params"] == rb["pruned_params"] and ra["sparsity"] == rb["sparsity"]
        for key in ("test_accuracy", "train_noisy_accuracy", "val_accuracy"):
            assert (ra[key] == rb[key]) if exact else abs(ra[key] - rb[key]) <= NOISE, (ra["round"], key)


def test_mirrored_strategy_and_its_resume(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tests" / "mirrored_study_script.py"), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["interrupted"] == 1
    _same_study(out["single"], out["mirrored"])
    _same_study(out["mirrored"], out["resumed"])


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow  # ~30 s: three TensorFlow processes
def test_two_workers_on_loopback(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _ports(2)]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, "-m", "apps.sdd", *TINY, f"--logdir={tmp_path / 'mw'}",
                                       "--strategy=multi_worker"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    single = subprocess.run([sys.executable, "-m", "apps.sdd", *TINY, f"--logdir={tmp_path / 'single'}"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    from keras_sdd.study.records import read_rounds

    _same_study(read_rounds(tmp_path / "single"), read_rounds(tmp_path / "mw"))
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["mw", "single"]   # the second worker wrote elsewhere
