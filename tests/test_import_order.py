"""keras_sdd works whatever the user imported first: each order runs in a fresh Python process.

What happens, measured with tensorflow 2.21, tf-keras 2.21, tfmot 0.8.1, tfds 4.9.10, keras-cv 0.9.0:

* ``tf.keras`` is resolved lazily, on its first attribute access, from TF_USE_LEGACY_KERAS. Importing
  tensorflow, tensorflow_datasets or tensorflow_model_optimization before keras_sdd does not access it, so once
  keras_sdd has set TF_USE_LEGACY_KERAS=1, ``tf.keras`` is tf_keras (Keras 2), as when keras_sdd comes first.
* Importing keras_cv first, or touching ``tf.keras`` (e.g. ``tf.keras.layers.Dense``) before keras_sdd, resolves
  ``tf.keras`` to Keras 3 for the rest of the process: setting the variable afterwards changes nothing.
* tfmot imports tf_keras itself, so in every order it wraps tf_keras models, which is how keras_sdd builds every
  model; only a model built with a Keras 3 ``tf.keras`` is refused (ValueError), hence keras_sdd never uses
  ``tf.keras``.
* ``import keras_sdd`` does not import keras_cv: keras_cv is loaded lazily, where it is used.

In each order the child process builds ``keras_sdd.models.build('lenet300_100', ...)``, wraps it with
``tfmot.sparsity.keras.prune_low_magnitude`` and trains one step with UpdatePruningStep, which prunes half of
every kernel. The processes run concurrently (about 10 s each alone, 20-40 s for all on 2 cores).
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300

# What the user imports before keras_sdd, and the Keras that tf.keras then is ("keras2" is tf_keras).
ORDERS = {
    "keras_sdd_first": ("", "keras2"),
    "tensorflow_first": ("import tensorflow as tf", "keras2"),
    "tensorflow_datasets_first": ("import tensorflow_datasets", "keras2"),
    "keras_cv_first": ("import keras_cv", "keras3"),
    "tfmot_first": ("import tensorflow_model_optimization", "keras2"),
    "tf_keras_accessed_first": ("import tensorflow as tf\ntf.keras.layers.Dense", "keras3"),
}

CHECK = textwrap.dedent("""
    import json
    import sys

    cv_before = "keras_cv" in sys.modules
    import keras_sdd
    report = {"keras_cv_from_keras_sdd": "keras_cv" in sys.modules and not cv_before}

    import numpy as np
    import tensorflow as tf
    import tf_keras
    import tensorflow_model_optimization as tfmot
    from keras_sdd import models

    report["tf_keras_is"] = "keras2" if tf.keras.layers.Dense is tf_keras.layers.Dense else "keras3"

    model = models.build("lenet300_100", (28, 28, 1), 10, seed=0)
    assert isinstance(model, tf_keras.Model), type(model)
    sparsity = tfmot.sparsity.keras
    pruned = sparsity.prune_low_magnitude(model, pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile(optimizer=tf_keras.optimizers.SGD(0.01),
                   loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    history = pruned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    assert np.isfinite(history.history["loss"][0]), history.history
    kernels = [w.numpy() for w in sparsity.strip_pruning(pruned).trainable_weights if w.shape.rank == 2]
    report["kernel_sparsity"] = [round(float((k == 0).mean()), 3) for k in kernels]

    if report["tf_keras_is"] == "keras3":  # why keras_sdd never builds with tf.keras
        try:
            sparsity.prune_low_magnitude(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]))
            report["keras3_model_refused"] = False
        except ValueError:
            report["keras3_model_refused"] = True
    print("REPORT " + json.dumps(report))
    print("OK")
""")


@pytest.fixture(scope="module")
def children(request):
    """Runs one child process per selected order, as many at once as there are cores; {order: Future}."""
    selected = [item.callspec.params["order"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")]
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # set in this process by conftest's import of keras_sdd
    env.update(TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
               OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))

    def run(order):
        return subprocess.run([sys.executable, "-c", ORDERS[order][0] + "\n" + CHECK], cwd=REPO, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=TIMEOUT_S)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        yield {order: pool.submit(run, order) for order in dict.fromkeys(selected)}


@pytest.mark.parametrize("order", list(ORDERS))
def test_import_order(children, order):
    try:
        proc = children[order].result()
    except subprocess.TimeoutExpired as timeout:
        partial = timeout.output or b""
        partial = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        pytest.fail(f"{order}: no answer in {TIMEOUT_S} s\n{partial[-3000:]}")
    output = proc.stdout
    assert proc.returncode == 0 and output.rstrip().endswith("OK"), f"{order} failed:\n{output[-4000:]}"
    report = json.loads(next(line for line in output.splitlines() if line.startswith("REPORT "))[7:])
    assert not report["keras_cv_from_keras_sdd"], "import keras_sdd imported keras_cv; it must be lazy"
    assert report["tf_keras_is"] == ORDERS[order][1], report
    assert report["kernel_sparsity"] and all(s == 0.5 for s in report["kernel_sparsity"]), report
    if report["tf_keras_is"] == "keras3":
        assert report["keras3_model_refused"], report
