"""Mask selection in numpy: exact counts, one global threshold, no revival, determinism, round targets."""
import numpy as np
import pytest

from keras_sdd.errors import ConfigError
from keras_sdd.pruning import masks as M
from keras_sdd.pruning.methods import PRUNING_METHODS, is_gradual


def _random_net(rng, n_tensors=None):
    n = n_tensors or int(rng.integers(1, 5))
    shapes = [tuple(int(d) for d in rng.integers(1, 9, size=rng.integers(1, 5))) for _ in range(n)]
    weights = {f"layer_{i}/kernel": rng.normal(size=s).astype(np.float32) for i, s in enumerate(shapes)}
    masks = {k: np.ones_like(w) for k, w in weights.items()}
    return weights, masks


def _zeros(masks):
    return sum(int(m.size - np.count_nonzero(m)) for m in masks.values())


def _total(masks):
    return sum(m.size for m in masks.values())


@pytest.mark.parametrize("fn", [M.global_magnitude_masks, M.layerwise_magnitude_masks,
                                lambda w, m, t: M.random_masks(w, m, t, seed=3)])
def test_exact_global_count_and_never_revive_over_rounds(fn):
    rng = np.random.default_rng(0)
    for _ in range(25):
        weights, masks = _random_net(rng)
        total = _total(masks)
        for target in sorted(rng.uniform(0, 1, size=4)):
            new = fn(weights, masks, float(target))
            assert set(new) == set(masks)
            for k in masks:
                assert new[k].dtype == np.float32 and new[k].shape == masks[k].shape
                assert set(np.unique(new[k])) <= {0.0, 1.0}
                assert not np.any((masks[k] == 0) & (new[k] == 1)), "a pruned weight was revived"
            # layer-wise rounds per tensor, so its global count may be off by one weight per tensor
            slack = len(masks) if fn is M.layerwise_magnitude_masks else 1
            assert abs(_zeros(new) - target * total) <= slack
            masks = new


def test_global_count_is_exactly_rounded():
    rng = np.random.default_rng(1)
    weights, masks = _random_net(rng, 3)
    total = _total(masks)
    for target in np.linspace(0, 1, 37):
        assert _zeros(M.global_magnitude_masks(weights, masks, float(target))) == M.count_for(target, total)


def test_one_global_threshold_large_tensor_survives():
    rng = np.random.default_rng(2)
    weights = {"small/kernel": rng.uniform(0.0, 1.0, (10, 10)).astype(np.float32),
               "large/kernel": rng.uniform(10.0, 11.0, (5, 5)).astype(np.float32)}
    masks = {k: np.ones_like(w) for k, w in weights.items()}
    new = M.global_magnitude_masks(weights, masks, 0.5)  # 63 of 125 (62.5 rounded half up), all small
    assert new["large/kernel"].all()
    assert _zeros(new) == 63
    kept = weights["small/kernel"][new["small/kernel"] == 1]
    pruned = weights["small/kernel"][new["small/kernel"] == 0]
    assert pruned.max() <= kept.min()  # one threshold
    # layer-wise prunes the large tensor too
    per = M.layerwise_magnitude_masks(weights, masks, 0.5)
    assert _zeros({"l": per["large/kernel"]}) == 13 and _zeros({"s": per["small/kernel"]}) == 50


def test_pruned_weights_ignored_even_if_large():
    """Masked weights (possibly non-zero mid-round) stay pruned and never count as survivors."""
    weights = {"a": np.array([5.0, 0.1, 0.2, 0.3], np.float32)}
    masks = {"a": np.array([0.0, 1.0, 1.0, 1.0], np.float32)}
    new = M.global_magnitude_masks(weights, masks, 0.5)
    np.testing.assert_array_equal(new["a"], [0, 0, 1, 1])


def test_ties_are_deterministic_by_flat_index():
    weights = {"a": np.ones((2, 3), np.float32), "b": np.ones(4, np.float32)}
    masks = {k: np.ones_like(w) for k, w in weights.items()}
    new = M.global_magnitude_masks(weights, masks, 0.7)  # 7 of 10: all of a, then first of b
    np.testing.assert_array_equal(new["a"], np.zeros((2, 3)))
    np.testing.assert_array_equal(new["b"], [0, 1, 1, 1])


def test_layerwise_exact_per_tensor():
    rng = np.random.default_rng(4)
    for _ in range(20):
        weights, masks = _random_net(rng)
        for target in (0.2, 0.36, 0.488, 0.9):
            masks = M.layerwise_magnitude_masks(weights, masks, target)
            for k, m in masks.items():
                assert m.size - np.count_nonzero(m) == M.count_for(target, m.size)


def test_random_deterministic_per_seed_and_exact():
    rng = np.random.default_rng(5)
    weights, masks = _random_net(rng, 4)
    a = M.random_masks(weights, masks, 0.4, seed=7)
    b = M.random_masks(weights, masks, 0.4, seed=7)
    c = M.random_masks(weights, masks, 0.4, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    assert _zeros(a) == M.count_for(0.4, _total(masks))


def test_target_below_current_refused():
    weights = {"a": np.arange(10, dtype=np.float32)}
    masks = M.global_magnitude_masks(weights, {"a": np.ones(10, np.float32)}, 0.5)
    for fn in (M.global_magnitude_masks, M.layerwise_magnitude_masks):
        with pytest.raises(ConfigError):
            fn(weights, masks, 0.3)
    with pytest.raises(ConfigError):
        M.random_masks(weights, masks, 0.3, seed=0)
    same = M.global_magnitude_masks(weights, masks, 0.5)  # equal target: unchanged
    np.testing.assert_array_equal(same["a"], masks["a"])
    with pytest.raises(ConfigError):
        M.global_magnitude_masks(weights, {"b": np.ones(10, np.float32)}, 0.5)


def test_round_targets():
    targets = M.round_targets()
    assert len(targets) == 28
    assert targets[-1] >= 0.998 and targets[-2] < 0.998
    np.testing.assert_allclose(targets[:3], [0.2, 0.36, 0.488])
    remaining = [1.0] + [1.0 - t for t in targets]
    np.testing.assert_allclose(np.array(remaining[1:]) / np.array(remaining[:-1]), 0.8)
    assert len(M.round_targets(0.5, 0.9)) == 4
    for bad in ((0.0, 0.9), (1.0, 0.9), (0.2, 1.0), (0.2, 0.0)):
        with pytest.raises(ConfigError):
            M.round_targets(*bad)


def test_sparsity_and_collapsed():
    masks = {"a": np.zeros((2, 2), np.float32), "b": np.array([1, 0, 1, 1], np.float32)}
    g, per = M.sparsity(masks)
    assert g == pytest.approx(5 / 8) and per == {"a": 1.0, "b": 0.25}
    assert M.collapsed(masks) == ["a"]
    assert M.sparsity({}) == (0.0, {})


def test_methods_registry():
    rng = np.random.default_rng(6)
    weights, masks = _random_net(rng, 2)
    assert set(PRUNING_METHODS.names()) == {"global_magnitude", "layerwise_magnitude", "random",
                                           "tfmot_constant", "tfmot_polynomial"}
    for name in ("global_magnitude", "layerwise_magnitude", "random"):
        assert not is_gradual(name)
        out = PRUNING_METHODS.get(name)(weights, masks, 0.5, 0)
        assert abs(_zeros(out) - 0.5 * _total(masks)) <= len(masks)
    for name in ("tfmot_constant", "tfmot_polynomial"):
        assert is_gradual(name)
        with pytest.raises(ConfigError):
            PRUNING_METHODS.get(name)(weights, masks, 0.5, 0)
    with pytest.raises(ConfigError):
        is_gradual("nope")
