"""No process-wide surprise: ``import keras_sdd`` (and its Keras 3 path, and the numpy mask code) leaves ``tf.keras``
as Keras 3 and loads neither tfmot nor tf_keras; the tf_keras path pins Keras 2 itself. Each case runs in a fresh
process (the test process has the pin: conftest imports the tf_keras path)."""
import json

import pytest

CASES = {
    # what the child imports, then the modules that must be absent, and what tf.keras must be afterwards
    "package": ("import keras_sdd", ("tensorflow_model_optimization", "tf_keras"), "keras_3"),
    "masks": ("import keras_sdd.pruning.masks, keras_sdd.pruning.methods",
              ("tensorflow_model_optimization", "tf_keras", "tensorflow", "keras"), None),
    "keras3_path": ("import keras_sdd.keras3", ("tensorflow_model_optimization", "tf_keras"), "keras_3"),
    "tf_keras_path": ("import keras_sdd.callbacks\nimport keras_cv", (), "tf_keras"),  # keras_cv renames tf.keras
}

CHECK = """
import json, os, sys
{imports}
report = {{"loaded": sorted(m for m in {absent!r} if m in sys.modules),
          "pin": os.environ.get("TF_USE_LEGACY_KERAS")}}
if {expect!r} is not None:
    import keras
    import tensorflow as tf
    report["tf_keras_is"] = "keras_3" if tf.keras.layers.Dense is keras.layers.Dense else "tf_keras"
    import keras_sdd.legacy_keras as legacy  # only now: importing it earlier would pin Keras 2
    report["seen_as"] = legacy.tf_keras_is()
    if report["tf_keras_is"] == "keras_3":  # the issue's report: mixing tf.keras layers into a Keras 3 model
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), tf.keras.layers.Dense(2)])
        report["mixed_output"] = list(model(tf.zeros((1, 3))).shape)
print("REPORT " + json.dumps(report))
"""


@pytest.mark.parametrize("case", list(CASES))
def test_imports_leave_tf_keras_alone(run_keras3, case):
    imports, absent, expect = CASES[case]
    proc = run_keras3(["-c", CHECK.format(imports=imports, absent=absent, expect=expect)])
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))[7:])
    assert report["loaded"] == [], report
    if case == "tf_keras_path":
        assert report["pin"] == "1" and report["tf_keras_is"] == "tf_keras", report
    else:
        assert report["pin"] is None, report
    if expect is not None:
        assert report["seen_as"] == report["tf_keras_is"], report  # legacy_keras reads it without resolving
    if expect == "keras_3":
        assert report["tf_keras_is"] == "keras_3" and report["mixed_output"] == [1, 2], report


def test_pin_too_late_is_named_where_it_matters(run_keras3):
    code = ("import tensorflow as tf\ntf.keras.layers.Dense\nimport keras_sdd.legacy_keras as legacy\n"
            "print('SEEN', legacy.tf_keras_is())\n"
            "try:\n    legacy.require('augment=randaugment')\nexcept RuntimeError as e:\n    print('ERROR', e)\n")
    proc = run_keras3(["-c", code])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "SEEN keras_3" in proc.stdout
    error = next(line for line in proc.stdout.splitlines() if line.startswith("ERROR "))
    assert "import keras_sdd.legacy_keras (or set TF_USE_LEGACY_KERAS=1) before anything touches tf.keras" in error
