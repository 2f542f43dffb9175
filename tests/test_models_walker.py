"""The one layer walker: unique keys, the same for plain and wrapped copies, teacher and student never collide."""
import numpy as np
import pytest
import tf_keras

from keras_sdd import models
from keras_sdd.errors import SDDError
from keras_sdd.models.params import unwrap, walk_layers
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.training.retrain import restore, snapshot


class _Both(tf_keras.Model):
    """A subclassed container (as a distillation model is) holding two models that share a name."""

    def __init__(self, a, b):
        super().__init__(name="both")
        self.a, self.b = a, b

    def call(self, x):
        return self.a(x), self.b(x)


def _pair():
    """Two models of the same zoo (same name 'fcn', same layer names) side by side."""
    a = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    b = models.build("fcn", (6,), 3, width=8, depth=1, seed=1)
    return a, b, _Both(a, b)


def test_plain_and_wrapped_give_the_same_keys():
    plain = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    wrapped = tfmot_bridge.wrap(plain)
    assert [k for k, _ in walk_layers(plain)] == [k for k, _ in walk_layers(wrapped)]
    assert set(snapshot(plain)) == set(snapshot(wrapped))
    assert {k.rsplit("/", 1)[0] for k in tfmot_bridge.get_masks(wrapped)} <= {k for k, _ in walk_layers(wrapped)}


def test_same_zoo_models_nested_never_collide():
    a, b, both = _pair()
    keys = [k for k, _ in walk_layers(both)]
    assert len(keys) == len(set(keys))
    assert any(k.startswith("fcn/") for k in keys) and any(k.startswith("fcn#2/") for k in keys)
    snap = snapshot(both)
    for key, layer in walk_layers(a):   # each model's weights are kept apart under its own prefix
        for w, kept in zip(unwrap(layer).get_weights(), snap.get(f"fcn/{key}", [])):
            np.testing.assert_array_equal(w, kept)
    for key, layer in walk_layers(b):
        for w, kept in zip(unwrap(layer).get_weights(), snap.get(f"fcn#2/{key}", [])):
            np.testing.assert_array_equal(w, kept)
    before = {k: [w.copy() for w in v] for k, v in snap.items()}
    for layer in a.layers + b.layers:
        if layer.get_weights():
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    restore(both, before)
    after = snapshot(both)
    for k in before:
        for w0, w1 in zip(before[k], after[k]):
            np.testing.assert_array_equal(w0, w1)
    assert not np.array_equal(after["fcn/logits"][0], after["fcn#2/logits"][0])


def test_duplicate_layer_names_refused():
    x = tf_keras.Input((3,))
    d1 = tf_keras.layers.Dense(2, name="d")
    d2 = tf_keras.layers.Dense(2, name="e")
    model = tf_keras.Model(x, d2(d1(x)))
    d2._name = "d"  # a hand-assembled model with two layers of one name
    with pytest.raises(SDDError, match="both called 'd'"):
        list(walk_layers(model))
