"""Packed replicates, measured in one run: ``python -m benchmarks.replicates [--repeats=1] [--replicates=5]``.

For each setting, the wall time of ``apps.sdd --replicates=R`` (R studies packed in one compiled step, see
``keras_sdd.study.packed``) over the wall time of one study of the same setting (``--replicates=1``), both whole
processes (start-up, data, tracing, every round, evaluation, checkpoints, records), runs interleaved, median of
``--repeats``:

- ``quickstart``: ``configs/quickstart.flags`` (FCN 100→500→2, 28 rounds of 25 epochs); target ≤ 2.0 for R = 5,
  i.e. a throughput of ≥ 2.5 studies per study-time.
- ``gmm_widths_cpu width 50``: the width-50 linear setting of ``configs/sweeps/gmm_widths_cpu.flags``
  (FCN 50→50→2, 17 rounds of 20 epochs).

The ratio R·(one study) / (packed run) is the speed-up over running the R studies one after another; R
separate processes on R cores would be faster still in wall time, but use R cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from keras_sdd import console

console.quiet_native_logs()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The width-50 linear study of the gmm_widths_cpu sweep, as apps.sdd flags (the sweep's fixed flags + its cell).
GMM_WIDTH_50 = ["--study=sdd", "--dataset=gaussian_mixture", "--gmm_task=linear", "--gmm_dim=50",
                "--gmm_bayes_accuracy=0.9", "--gmm_train_size=3000", "--gmm_test_size=2000", "--val_fraction=0.1",
                "--noise_type=symmetric", "--noise_rate=0.2", "--model=fcn", "--width=50", "--depth=1",
                "--prune_method=global_magnitude", "--prune_fraction=0.3", "--final_sparsity=0.997",
                "--retrain=lr_rewind", "--optimizer=adam", "--learning_rate=0.002", "--lr_schedule=cosine",
                "--epochs=20", "--batch_size=64", "--steps_per_execution=50", "--checkpoint_every_secs=60",
                "--threads=1", "--seed=0"]

SETTINGS = {"quickstart": ["--flagfile=configs/quickstart.flags"], "gmm_widths_cpu width 50": GMM_WIDTH_50}


def _timed(args) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "apps.sdd", *args], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"apps.sdd {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall


def measure(flags, replicates: int, repeats: int):
    """(median wall of one study, median wall of R packed), interleaved."""
    one, packed = [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            one.append(_timed([*flags, f"--logdir={d}/one"]))
            packed.append(_timed([*flags, f"--replicates={replicates}", f"--logdir={d}/packed"]))
        print(f"    repeat {i + 1}/{repeats}: one study {one[-1]:.1f} s, {replicates} packed {packed[-1]:.1f} s",
              flush=True)
    return statistics.median(one), statistics.median(packed)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--replicates", type=int, default=5)
    p.add_argument("--only", choices=sorted(SETTINGS), action="append", help="measure only these settings")
    a = p.parse_args()
    R = a.replicates
    print(f"{os.cpu_count()} CPU cores; {R} replicates packed vs one study, {a.repeats} interleaved repeat(s)",
          flush=True)
    rows = []
    for name, flags in SETTINGS.items():
        if a.only and name not in a.only:
            continue
        print(f"  {name}:", flush=True)
        one, packed = measure(flags, R, a.repeats)
        rows.append((name, one, packed))
    print(f"\n{'setting':<28}{'one (s)':>10}{f'{R} packed (s)':>16}{'packed/one':>12}{f'{R}·one/packed':>16}")
    for name, one, packed in rows:
        print(f"{name:<28}{one:>10.1f}{packed:>16.1f}{packed / one:>12.2f}{R * one / packed:>16.2f}")
    print("target: quickstart packed/one <= 2.0 (throughput >= 2.5x)")


if __name__ == "__main__":
    main()
