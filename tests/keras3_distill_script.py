"""Keras 3 DistillationModel checks in a child process of the chosen backend (KERAS_BACKEND=jax for the default
suite; the test process covers TensorFlow). Prints one JSON line: the losses it computed and what training changed.
"""
import json

import keras
import numpy as np

from keras_sdd.keras3 import DistillationModel, IterativeMagnitudePruning, teacher_logits


def mlp(seed, l2=0.0):
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(12, activation="relu", kernel_regularizer=reg),
                             keras.layers.Dense(4, kernel_regularizer=reg)])


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype("float32")
    y = rng.integers(0, 4, 64)
    w = rng.uniform(0.5, 2.0, 64).astype("float32")
    teacher, student = mlp(1, l2=0.01), mlp(2, l2=0.001)
    model = DistillationModel(student, teacher, alpha=0.7, temperature=4.0)
    model.compile(keras.optimizers.SGD(0.05), metrics=["accuracy"])
    cached = teacher_logits(teacher, x)
    live = model.evaluate(x, y, sample_weight=w, batch_size=64, verbose=0, return_dict=True)
    from_cache = model.evaluate(x, (y, cached), sample_weight=w, batch_size=64, verbose=0, return_dict=True)
    t0 = [np.asarray(v).copy() for v in teacher.weights]
    imp = IterativeMagnitudePruning(prune_epochs=[1], verbose=0)
    model.fit(x, (y, cached), batch_size=16, epochs=2, verbose=0, callbacks=[imp])
    print("RESULT " + json.dumps({
        "live": live, "cached": from_cache,
        "teacher_unchanged": all(np.array_equal(a, np.asarray(b)) for a, b in zip(t0, teacher.weights)),
        "teacher_zeros": int(sum(np.sum(np.asarray(v) == 0) for v in teacher.trainable_weights)),
        "student_kernel_zeros": int(sum(np.sum(np.asarray(l.kernel) == 0) for l in student.layers)),
        "student_kernel_size": int(sum(np.size(l.kernel) for l in student.layers)),
        "history": {str(k): v for k, v in imp.history.items()},
        "backend": keras.backend.backend(),
    }))


if __name__ == "__main__":
    main()
