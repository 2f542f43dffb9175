"""Training step of the Keras 3 path, pruned ÷ dense, on this process's backend: ``KERAS_BACKEND=jax python -m
benchmarks.keras3_step`` (``benchmarks.step_time`` runs it for TensorFlow and, where installed, JAX).

For each model (LeNet-300-100 and a small VGG-like, written in Keras 3) it times the dense model and the same
model with 50 % of its kernels masked by ``keras_sdd.keras3`` (mask through the kernel variables' constraint,
applied by the optimizer inside the compiled step), interleaved, best step of ``--repeats`` (as ``timeit``),
and prints one line per variant: ``model variant first_s best_ms ratio``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_sdd.keras3 import kernel_masks as km  # noqa: E402
from keras_sdd.pruning.masks import global_magnitude_masks  # noqa: E402


def lenet300_100():
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(300, activation="relu"), keras.layers.Dense(100, activation="relu"),
                             keras.layers.Dense(10)])


def vgg_like():
    layers = [keras.Input((32, 32, 3))]
    for width in (16, 32, 64):
        layers += [keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
                   keras.layers.Conv2D(width, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D()]
    return keras.Sequential(layers + [keras.layers.Flatten(), keras.layers.Dense(10)])


def variant(build, pruned: bool, spe: int):
    keras.utils.set_random_seed(0)
    model = build()
    if pruned:
        kernels = km.prunable_kernels(model)
        weights = km.get_weights(kernels)
        km.assign_masks(kernels, global_magnitude_masks(weights, {k: np.ones_like(w) for k, w in weights.items()},
                                                        0.5))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  steps_per_execution=spe)
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps_per_execution", type=int, default=10)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    for name, build, shape, steps in (("lenet300_100", lenet300_100, (28, 28, 1), a.steps),
                                      ("vgg_like", vgg_like, (32, 32, 3), max(10, a.steps // 5))):
        x = rng.normal(size=(a.batch * steps, *shape)).astype("float32")
        y = rng.integers(0, 10, a.batch * steps)
        models = {"dense": variant(build, False, a.steps_per_execution),
                  "keras3 masks": variant(build, True, a.steps_per_execution)}
        first, times = {}, {k: [] for k in models}
        for k, m in models.items():
            t = time.perf_counter()
            m.fit(x[:a.batch * a.steps_per_execution], y[:a.batch * a.steps_per_execution], batch_size=a.batch,
                  epochs=1, verbose=0, shuffle=False)
            first[k] = time.perf_counter() - t
        for _ in range(a.repeats):
            for k, m in models.items():
                t = time.perf_counter()
                m.fit(x, y, batch_size=a.batch, epochs=1, verbose=0, shuffle=False)
                times[k].append((time.perf_counter() - t) / steps)
        zeros = sum(int(np.sum(np.asarray(v) == 0)) for v in km.prunable_kernels(models["keras3 masks"]).values())
        total = sum(int(np.prod(v.shape)) for v in km.prunable_kernels(models["keras3 masks"]).values())
        assert abs(zeros / total - 0.5) < 1e-3, (zeros, total)  # still 50 % sparse after all the timed steps
        best = {k: min(v) for k, v in times.items()}
        for k in models:
            print(f"KERAS3 {keras.backend.backend()} {name} {k.replace(' ', '_')} {first[k]:.2f} "
                  f"{1000 * best[k]:.3f} {best[k] / best['dense']:.3f}", flush=True)


if __name__ == "__main__":
    main()
