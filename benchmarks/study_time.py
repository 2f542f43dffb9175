"""Study-level speed, measured in one run: ``python -m benchmarks.study_time [--repeats=3]``.

1. ``apps.sdd --flagfile=configs/quickstart.flags`` wall time over the wall time of ``benchmarks.reference_imp``
   (the simplest fast TensorFlow IMP loop doing the same work), runs interleaved, median of ``--repeats``:
   target ≤ 1.0.
2. Where the study's time goes: one more quickstart run with timers around its parts (start-up and imports, data,
   assembly and tracing, training, evaluation, checkpoints, TensorBoard, predictions, energy meter, records).
3. Input pipeline: images per second of the CIFAR-shaped training pipeline with standard augmentation over the
   images per second ResNet-18 trains on the same machine: target ≥ 5.
4. Peak memory (max RSS) of a quickstart study process and of a CIFAR-shaped one.
5. Step ratios (``benchmarks.step_time`` and ``benchmarks.kd_step``): pruned step / dense step for LeNet-300-100
   and the VGG-like (ResNet-18 with ``--resnet18``: ~2.5 s a step on 2 cores), tfmot's stock wrapper beside it;
   KD step / student step with cached and uncached teacher logits.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from keras_sdd import console

console.quiet_native_logs()  # TensorFlow's native start-up lines would bury the table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(args, env=None) -> tuple:
    """(wall seconds, stdout) of a child process."""
    t = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout


PEAK = ("import resource, runpy, sys; sys.argv = ['apps.sdd'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('apps.sdd', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('peak_rss_mib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def peak_rss(study_args) -> float:
    """Max resident memory (MiB) of one study process."""
    _, out = _timed([sys.executable, "-c", PEAK, *study_args])
    return float([line for line in out.splitlines() if line.startswith("peak_rss_mib")][-1].split()[1])


def study_vs_reference(repeats: int):
    study, ref = [], []
    for i in range(repeats):   # interleaved: drifts of the machine hit both alike
        with tempfile.TemporaryDirectory() as d:
            study.append(_timed([sys.executable, "-m", "apps.sdd", "--flagfile=configs/quickstart.flags",
                                 f"--logdir={d}/qs"])[0])
        ref.append(_timed([sys.executable, "-m", "benchmarks.reference_imp"])[0])
        print(f"  repeat {i + 1}/{repeats}: study {study[-1]:.1f} s, reference {ref[-1]:.1f} s", flush=True)
    return study, ref


PROFILE = r'''
import json, sys, time, collections
t0 = time.perf_counter()
import keras_sdd
from keras_sdd import console, process
from keras_sdd.config import StudyConfig
import tensorflow as tf
t_import = time.perf_counter() - t0
from keras_sdd.study import runner, assemble as asm, checkpoints, board, records
from keras_sdd.analysis import energy
spent = collections.Counter()
def timer(obj, name, label):
    original = getattr(obj, name)
    def wrapped(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent[label] += time.perf_counter() - t
    setattr(obj, name, wrapped)
timer(asm, "assemble", "data + model + compile (assemble)")
timer(runner, "assemble", "data + model + compile (assemble)")
timer(runner.RoundLoop, "_train", "training (fit, callbacks, epoch checkpoints)")
timer(runner.RoundLoop, "_evaluate", "evaluation (3 splits, calibration, FLOPs, predictions)")
timer(runner.RoundLoop, "_save_predictions", "  of which: writing predictions")
timer(checkpoints.StudyCheckpoints, "save_round", "round checkpoints")
timer(checkpoints.StudyCheckpoints, "save_latest", "  of which: epoch checkpoints")
timer(board.StudyBoard, "log_round", "TensorBoard (rounds)")
timer(board.EpochRecorder, "flush", "TensorBoard (epochs)")
timer(records.RoundRecords, "append", "rounds.csv")
timer(energy.EnergyMeter, "start", "energy meter")
timer(energy.EnergyMeter, "end", "energy meter")
timer(runner.RoundLoop, "_prepare_rewind", "other")
args = dict(l.lstrip("-").split("=", 1) for l in open("configs/quickstart.flags") if l.startswith("--"))
c = StudyConfig(dataset="gaussian_mixture", gmm_task="linear", gmm_dim=100, gmm_bayes_accuracy=0.9,
                gmm_train_size=10000, gmm_test_size=5000, noise_rate=0.2, model="fcn", width=500, depth=1,
                optimizer="adam", learning_rate=0.001, lr_schedule="cosine", epochs=25, batch_size=128,
                steps_per_execution=100, threads=1, logdir=sys.argv[1])
process.setup_for(c)
t1 = time.perf_counter()
runner.run_study(c)
total = time.perf_counter() - t0
spent["start-up and imports"] = t_import
print(json.dumps({"total": total, "run_study": time.perf_counter() - t1, "parts": spent}))
'''


def breakdown() -> dict:
    with tempfile.TemporaryDirectory() as d:
        _, out = _timed([sys.executable, "-c", PROFILE, f"{d}/qs"])
    return json.loads(out.strip().splitlines()[-1])


PIPELINE = r'''
import json, sys, time
import keras_sdd
import numpy as np, tensorflow as tf, tf_keras
tf.config.threading.set_intra_op_parallelism_threads(0)
from keras_sdd import models
from keras_sdd.data.bundle import DataBundle, DatasetInfo, Split
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8); y = rng.integers(0, 10, 10000)
info = DatasetInfo("cifar-shaped", 10, (32, 32, 3), tuple(map(str, range(10))), 10000, 0, 100, "none", 0.0, 0.0)
b = DataBundle(info, Split(x, y, y), None, Split(x[:100], y[:100], y[:100]), augment="standard",
               mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26])
ds = b.train_dataset(128, seed=0, epochs=3)
it = iter(ds); next(it)
t = time.perf_counter(); n = 0
for xb, yb in it:
    n += int(xb.shape[0])
pipe = n / (time.perf_counter() - t)
m = models.build("resnet18", (32, 32, 3), 10, seed=0)
m.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
xb = tf.constant(np.random.rand(128, 32, 32, 3).astype("float32")); yb = tf.constant(y[:128])
m.train_on_batch(xb, yb)
t = time.perf_counter()
for _ in range(3):
    m.train_on_batch(xb, yb)
model = 3 * 128 / (time.perf_counter() - t)
print(json.dumps({"pipeline": pipe, "model": model}))
'''

CIFAR_STUDY = r'''
import sys, numpy as np
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8); y = rng.integers(0, 10, 5000)
np.savez(sys.argv[1], x_train=x, y_train=y, x_test=x[:1000], y_test=y[:1000])
'''


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--resnet18", action="store_true", help="also the ResNet-18 step ratio (slow on a CPU)")
    a = p.parse_args()
    print(f"{os.cpu_count()} CPU cores; quickstart study vs reference loop, {a.repeats} interleaved repeats "
          "(about 4 minutes each)...", flush=True)
    study, ref = study_vs_reference(a.repeats)
    ratio = statistics.median(study) / statistics.median(ref)
    print(f"\n{'measure':<58}{'value':>12}", flush=True)
    print(f"{'quickstart study wall, median (s)':<58}{statistics.median(study):>12.1f}")
    print(f"{'reference IMP loop wall, median (s)':<58}{statistics.median(ref):>12.1f}")
    print(f"{'study / reference (target <= 1.0)':<58}{ratio:>12.3f}", flush=True)
    print("\nwhere the study's time goes (one instrumented quickstart run):", flush=True)
    b = breakdown()
    for part, secs in sorted(b["parts"].items(), key=lambda kv: -kv[1]):
        print(f"  {part:<56}{secs:>10.1f} s")
    print(f"  {'total':<56}{b['total']:>10.1f} s", flush=True)
    print("\ninput pipeline (CIFAR-shaped, standard augmentation) vs ResNet-18 training on this machine:", flush=True)
    _, out = _timed([sys.executable, "-c", PIPELINE])
    pipe = json.loads(out.strip().splitlines()[-1])
    print(f"  pipeline {pipe['pipeline']:.0f} images/s, model {pipe['model']:.1f} images/s: "
          f"ratio {pipe['pipeline'] / pipe['model']:.1f} (target >= 5)", flush=True)
    with tempfile.TemporaryDirectory() as d:
        rss_quick = peak_rss(["--flagfile=configs/quickstart.flags", "--max_rounds=2", f"--logdir={d}/qs"])
        subprocess.run([sys.executable, "-c", CIFAR_STUDY, f"{d}/c.npz"], check=True)
        rss_cifar = peak_rss(["--dataset=npz", f"--data_path={d}/c.npz", "--augment=standard", "--model=vgg_like",
                              "--depth=5", "--width=5", "--epochs=1", "--max_rounds=1", "--optimizer=sgd",
                              "--learning_rate=0.1", "--lr_schedule=constant", "--notrack_energy",
                              f"--logdir={d}/cs"])
    from benchmarks import kd_step, step_time

    print("\nstep ratios (batch 128, 10 steps per execution, best of 5 interleaved):", flush=True)
    cases = [("lenet300_100", (28, 28, 1), 10, 100, {}), ("vgg_like", (32, 32, 3), 10, 10, dict(depth=3, width=4))]
    if a.resnet18:
        cases.append(("resnet18", (32, 32, 3), 10, 2, {}))
    for name, shape, classes, steps, kw in cases:
        _, best = step_time.measure(name, shape, classes, 128, steps, 5, min(10, steps), **kw)
        print(f"  {name:<14} keras_sdd pruned / dense {best['keras_sdd'] / best['dense']:.3f} (target <= 1.05); "
              f"tfmot stock / dense {best['tfmot stock'] / best['dense']:.3f}", flush=True)
    for name, shape, classes, steps, skw, tspec in (
            ("lenet300_100", (28, 28, 1), 10, 100, {}, ("fcn", dict(hidden=[600, 200]))),
            ("vgg_like", (32, 32, 3), 10, 10, dict(depth=3, width=3), ("vgg_like", dict(depth=3, width=4)))):
        best = {k: v[0] for k, v in kd_step.measure(name, shape, classes, 128, steps, 5, 10, skw, tspec).items()}
        print(f"  {name:<14} KD cached / student {best['KD cached'] / best['student']:.3f} (target <= 1.10); "
              f"KD uncached / student {best['KD uncached'] / best['student']:.3f}", flush=True)
    print(f"\npeak memory (max RSS of one study process): quickstart (2 rounds) {rss_quick:.0f} MiB; CIFAR-shaped "
          f"VGG-like δ=5 γ=5 (5000 32x32x3 images, standard augmentation) {rss_cifar:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
