"""Our masks on tfmot wrappers: scope of wrapping, fixed masks through training, exact rounds, no retracing."""
import logging

import numpy as np
import pytest
import tf_keras
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from keras_sdd.errors import ConfigError
from keras_sdd.pruning import masks as M
from keras_sdd.pruning import tfmot_bridge as B
from keras_sdd.pruning.schedules import FixedMaskSchedule, gradual_schedule

L = tf_keras.layers


def conv_net(output_name="logits", seed=0):
    tf_keras.utils.set_random_seed(seed)
    return tf_keras.Sequential([
        L.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1), name="conv"),
        L.Flatten(name="flat"),
        L.Dense(8, activation="relu", name="hidden"),
        L.Dense(3, name=output_name),
    ])


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, n)


def compiled(model, lr=0.05):
    model.compile(tf_keras.optimizers.SGD(lr, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def wrapped_names(model):
    return sorted(w.layer.name for w in B.wrappers(model))


def test_wrap_scope_copy_and_initial_state():
    model = conv_net()
    x, _ = data(8)
    for scope, expected in [(B.PruneScope(), ["conv", "hidden", "logits"]),
                            (B.PruneScope(only_dense=True), ["hidden", "logits"]),
                            (B.PruneScope(keep_output_dense=True), ["conv", "hidden"]),
                            (B.PruneScope(True, True), ["hidden"])]:
        wrapped = B.wrap(model, scope)
        assert wrapped_names(wrapped) == expected
        assert sorted(B.get_weights(wrapped)) == [f"{n}/kernel" for n in expected]
        assert all(np.all(m == 1) for m in B.get_masks(wrapped).values())
        assert all(int(w.pruning_step.numpy()) == 0 for w in B.wrappers(wrapped))
        assert all(isinstance(w.pruning_schedule, FixedMaskSchedule) for w in B.wrappers(wrapped))
        np.testing.assert_allclose(wrapped(x), model(x), rtol=1e-5, atol=1e-6)
        assert not any(a is b for a in model.weights for b in wrapped.weights)  # a copy, not shared
    # without a layer named 'logits', the last Dense is the output
    assert wrapped_names(B.wrap(conv_net("out"), B.PruneScope(keep_output_dense=True))) == ["conv", "hidden"]
    with pytest.raises(ConfigError):
        B.wrap(B.wrap(model))


def test_nested_model_keys():
    inner = tf_keras.Sequential([L.Dense(5, input_shape=(6,), name="a"), L.Dense(4, name="b")], name="sub")
    inp = L.Input((6,))
    outer = tf_keras.Model(inp, L.Dense(2, name="logits")(L.Dense(3, name="a")(inner(inp))))
    wrapped = B.wrap(outer, B.PruneScope(keep_output_dense=True))
    assert list(B.get_weights(wrapped)) == ["sub/a/kernel", "sub/b/kernel", "a/kernel"]
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(wrapped(x), outer(x), rtol=1e-5, atol=1e-6)
    report = B.prune(wrapped, 0.5)
    assert report.per_layer.keys() == {"sub/a", "sub/b", "a"}


def test_fixed_masks_through_training_then_apply_masks():
    wrapped = compiled(B.wrap(conv_net()))
    report = B.prune(wrapped, 0.5)
    masks = B.get_masks(wrapped)
    assert all(np.all(B.get_weights(wrapped)[k][m == 0] == 0) for k, m in masks.items())  # assign zeroes
    x, y = data()
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = B.get_masks(wrapped)
    assert all(np.array_equal(after[k], masks[k]) for k in masks), "fixed masks changed in training"
    # measured fact: the optimizer moves masked weights after the wrapper's pre-forward re-masking
    stored = B.get_weights(wrapped)
    assert max(np.abs(stored[k][m == 0]).max() for k, m in masks.items()) > 0
    # ... and any forward pass, inference too, assigns weight *= mask before computing
    wrapped.predict(x[:4], verbose=0)
    assert all(np.all(B.get_weights(wrapped)[k][m == 0] == 0) for k, m in masks.items())
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0)
    B.apply_masks(wrapped)
    stored = B.get_weights(wrapped)
    for k, m in masks.items():
        assert np.all(stored[k][m == 0] == 0)
        assert np.count_nonzero(stored[k][m == 1]) == np.count_nonzero(m)  # survivors untouched
    again = B.sparsity_report(wrapped)
    assert again == report
    assert again.pruned == M.count_for(0.5, again.prunable)
    sizes = {k.split("/")[0]: m.size for k, m in masks.items()}
    assert again.prunable == sum(sizes.values())
    for layer, s in again.per_layer.items():
        assert s == pytest.approx(1 - np.count_nonzero(masks[f"{layer}/kernel"]) / sizes[layer])


@pytest.mark.parametrize("method", ["global_magnitude", "layerwise_magnitude", "random"])
def test_prune_rounds_reach_targets(method):
    wrapped = B.wrap(conv_net())
    previous = B.get_masks(wrapped)
    for target in M.round_targets(0.2, 0.9):
        report = B.prune(wrapped, target, method=method, seed=1)
        slack = 1 if method != "layerwise_magnitude" else len(previous)
        assert abs(report.pruned - target * report.prunable) <= slack
        assert abs(report.global_sparsity - target) <= slack / report.prunable
        current = B.get_masks(wrapped)
        assert not any(np.any((previous[k] == 0) & (current[k] == 1)) for k in current)
        previous = current
    with pytest.raises(ConfigError):
        B.prune(wrapped, 0.1, method=method)
    with pytest.raises(ConfigError):
        B.prune(wrapped, 0.95, method="tfmot_constant")


def test_layer_collapse_reported(caplog):
    wrapped = B.wrap(conv_net())
    weights = B.get_weights(wrapped)
    tiny = {"hidden/kernel": weights["hidden/kernel"] * 1e-6}
    [hidden] = [w for w in B.wrappers(wrapped) if w.layer.name == "hidden"]
    hidden.layer.kernel.assign(tiny["hidden/kernel"])
    share = weights["hidden/kernel"].size / sum(w.size for w in weights.values())
    with caplog.at_level(logging.WARNING):
        report = B.prune(wrapped, share + 0.01)
    assert report.collapsed == ["hidden"]
    assert report.per_layer["hidden"] == 1.0
    assert "layer collapse" in caplog.text and "hidden" in caplog.text


def test_assign_masks_no_retrace_and_scope():
    wrapped = compiled(B.wrap(conv_net(), B.PruneScope(keep_output_dense=True)))
    x, y = data(32)
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0)
    function = wrapped.train_function
    traces = function.experimental_get_tracing_count()
    for target in (0.2, 0.36):
        B.prune(wrapped, target)
        wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert wrapped.train_function is function
    assert function.experimental_get_tracing_count() == traces, "assigning masks retraced the train function"
    # prune() with a scope leaves the other wrappers' masks alone
    both = compiled(B.wrap(conv_net()))
    B.prune(both, 0.5, scope=B.PruneScope(keep_output_dense=True))
    assert np.all(B.get_masks(both)["logits/kernel"] == 1)
    assert B.sparsity_report(both, B.PruneScope(keep_output_dense=True)).global_sparsity == pytest.approx(
        0.5, abs=1e-3)


def test_assign_masks_refuses_bad_input():
    wrapped = B.wrap(conv_net())
    with pytest.raises(ConfigError):
        B.assign_masks(wrapped, {"nope/kernel": np.ones(3)})
    with pytest.raises(ConfigError):
        B.assign_masks(wrapped, {"hidden/kernel": np.ones(3)})
    with pytest.raises(ConfigError):
        B.assign_masks(wrapped, {"hidden/kernel": np.full((64, 8), 0.5)})


def test_strip_and_set_schedule():
    wrapped = compiled(B.wrap(conv_net()))
    B.prune(wrapped, 0.6)
    x, y = data(32)
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0)
    stripped = B.strip(wrapped)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)
    masks = B.get_masks(wrapped)
    kernels = {layer.name + "/kernel": layer.kernel.numpy() for layer in stripped.layers if hasattr(layer, "kernel")}
    assert all(np.all(kernels[k][m == 0] == 0) for k, m in masks.items())
    np.testing.assert_allclose(stripped.predict(x, verbose=0), wrapped.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # swapping the schedule rebuilds the train function
    old = wrapped.train_function
    schedule = gradual_schedule("constant", 0.7, end_step=4, frequency=1)
    assert B.set_schedule(wrapped, schedule) == 3
    assert wrapped.train_function is not old
    assert all(w.pruning_obj._pruning_schedule is schedule for w in B.wrappers(wrapped))
    assert B.set_schedule(wrapped, schedule) == 0
