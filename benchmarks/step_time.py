"""Training-step cost of pruning, measured in one run: ``python -m benchmarks.step_time [--quickstart]``.

For each model (LeNet-300-100, a small VGG-like) and one batch size it times, in the same process:
- ``dense``: the plain tf_keras model;
- ``keras_sdd``: the same model on tfmot PruneLowMagnitude wrappers with our fixed masks (50 % sparse), as a
  study trains it inside a round (no callback, no per-step Python);
- ``tfmot stock``: tfmot's own ``prune_low_magnitude`` with ``ConstantSparsity`` + ``UpdatePruningStep``;
- the Keras 3 path (``keras_sdd.keras3``, masks on the kernel variables' constraints) against a dense Keras 3
  model of the same architecture, in a child process per backend (``benchmarks.keras3_step``): TensorFlow, and
  JAX where it is installed (``--keras3_steps=0`` skips them).
It prints each variant's first-step (tracing) time, its best step time over interleaved repeats (the minimum,
as ``timeit`` reports: interference from the machine only ever adds time, and on a shared 2-core VM it comes in
multi-second bursts), and the ratio to dense (target for keras_sdd: <= 1.05). With ``--quickstart`` it also
times the README's main job.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from keras_sdd import console

console.quiet_native_logs()  # TensorFlow's native start-up lines would bury the table

import keras_sdd.legacy_keras  # noqa: E402,F401  (Keras 2 for tfmot)

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd import models
from keras_sdd.pruning import tfmot_bridge

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dataset(shape, classes, batch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 8, *shape)).astype("float32")
    y = rng.integers(0, classes, batch * 8)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).cache().repeat()


def _compile(model, spe):
    model.compile(tf_keras.optimizers.SGD(0.01, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=spe)
    return model


def variants(name, shape, classes, spe, **kw):
    """name -> (compiled model, callbacks) for the three variants of one model."""
    dense = _compile(models.build(name, shape, classes, seed=0, **kw), spe)
    ours = tfmot_bridge.wrap(models.build(name, shape, classes, seed=0, **kw))
    tfmot_bridge.prune(ours, 0.5)
    _compile(ours, spe)
    stock = tfmot.sparsity.keras.prune_low_magnitude(
        models.build(name, shape, classes, seed=0, **kw),
        pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=100))
    _compile(stock, spe)
    return {"dense": (dense, []), "keras_sdd": (ours, []),
            "tfmot stock": (stock, [tfmot.sparsity.keras.UpdatePruningStep()])}


def _fit(model, cbs, ds, steps):
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, callbacks=cbs, verbose=0)
    return time.perf_counter() - t


def measure(name, shape, classes, batch, steps, repeats, spe, **kw):
    ds = _dataset(shape, classes, batch)
    vs = variants(name, shape, classes, spe, **kw)
    first = {k: _fit(m, cbs, ds, spe) for k, (m, cbs) in vs.items()}  # one execution: trace + first steps
    times = {k: [] for k in vs}
    for _ in range(repeats):  # interleaved, so drifts of the machine hit every variant alike
        for k, (m, cbs) in vs.items():
            times[k].append(_fit(m, cbs, ds, steps) / steps)
    best = {k: min(v) for k, v in times.items()}
    return first, best


def keras3_rows(backend: str, batch: int, steps: int, repeats: int, spe: int) -> list:
    """Runs ``benchmarks.keras3_step`` with ``KERAS_BACKEND=backend`` (no Keras 2 pin inherited); its rows."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.keras3_step", f"--batch={batch}", f"--steps={steps}",
                           f"--repeats={repeats}", f"--steps_per_execution={spe}"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"benchmarks.keras3_step on {backend} failed:\n{done.stderr[-3000:]}")
    return [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("KERAS3 ")]


def quickstart_seconds() -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "apps.sdd", "--flagfile=configs/quickstart.flags",
                        f"--logdir={d}/qs"], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--steps_per_execution", type=int, default=10)
    p.add_argument("--quickstart", action="store_true", help="also time the quickstart study (a few minutes)")
    p.add_argument("--keras3_steps", type=int, default=100, help="steps timed on the Keras 3 path (0: skip it)")
    a = p.parse_args()
    cases = [("lenet300_100", (28, 28, 1), 10, a.steps, {}),
             ("vgg_like", (32, 32, 3), 10, max(10, a.steps // 10), dict(depth=3, width=4))]
    print(f"batch {a.batch}, steps_per_execution {a.steps_per_execution}, {a.repeats} interleaved repeats, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}", flush=True)
    print(f"{'model':<14}{'variant':<13}{'first step s':>13}{'best step ms':>14}{'vs dense':>10}", flush=True)
    for name, shape, classes, steps, kw in cases:
        first, best = measure(name, shape, classes, a.batch, steps, a.repeats, a.steps_per_execution, **kw)
        for k in best:
            print(f"{name:<14}{k:<13}{first[k]:>13.2f}{1000 * best[k]:>14.3f}{best[k] / best['dense']:>10.3f}",
                  flush=True)
    if a.keras3_steps:
        import importlib.util

        backends = ["tensorflow"] + (["jax"] if importlib.util.find_spec("jax") else [])
        for backend in backends:
            for _, name, variant, first_s, best_ms, ratio in keras3_rows(backend, a.batch, a.keras3_steps,
                                                                          a.repeats, a.steps_per_execution):
                label = f"k3 {'tf' if backend == 'tensorflow' else backend} {variant.replace('keras3_', '')}"
                print(f"{name:<14}{label:<13}{float(first_s):>13.2f}{float(best_ms):>14.3f}{float(ratio):>10.3f}",
                      flush=True)
    if a.quickstart:
        print("timing the quickstart study (configs/quickstart.flags, about 2 minutes on 2 cores)...", flush=True)
        print(f"quickstart study (configs/quickstart.flags): {quickstart_seconds():.1f} s wall "
              f"(target <= 120 s on 2 cores)")


if __name__ == "__main__":
    main()
