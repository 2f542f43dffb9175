"""Class selection and relabelling, training subsets, and the order classes -> subset -> noise -> val."""
import numpy as np
import pytest

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data
from keras_sdd.data.class_subset import relabel, resolve_classes, select_classes

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_resolve_names_ids_and_digit_strings():
    assert resolve_classes(["cat", "ship"], NAMES) == (3, 8)
    assert resolve_classes([8, 3], NAMES) == (8, 3)
    assert resolve_classes(np.array([1, 2]), NAMES) == (1, 2)
    assert resolve_classes(["3", "dog"], NAMES) == (3, 5)
    with pytest.raises(ConfigError, match="unknown class 'zebra'.*3=cat"):
        resolve_classes(["cat", "zebra"], NAMES)
    with pytest.raises(ConfigError, match="unknown class 10"):
        resolve_classes([1, 10], NAMES)
    with pytest.raises(ConfigError, match="twice"):
        resolve_classes([3, "cat"], NAMES)
    with pytest.raises(ConfigError, match="at least 2"):
        resolve_classes([3], NAMES)
    with pytest.raises(ConfigError):
        resolve_classes("cat", NAMES)


def test_select_relabels_in_given_order_and_keeps_pairs():
    y = np.array([0, 8, 3, 3, 5, 8, 1], np.int64)
    x = np.arange(7) * 10
    xs, ys, _, keep = select_classes(x, y, (8, 3))
    np.testing.assert_array_equal(xs, [10, 20, 30, 50])
    np.testing.assert_array_equal(ys, [0, 1, 1, 0])  # 8 -> 0, 3 -> 1
    np.testing.assert_array_equal(keep, [False, True, True, True, False, True, False])
    # with human labels: an example whose human label is outside the classes is dropped
    y_h = np.array([0, 8, 5, 3, 5, 3, 1], np.int64)
    xs, ys, yh, _ = select_classes(x, y, (8, 3), y_h)
    np.testing.assert_array_equal(xs, [10, 30, 50])
    np.testing.assert_array_equal(ys, [0, 1, 0])
    np.testing.assert_array_equal(yh, [0, 1, 1])
    np.testing.assert_array_equal(relabel(np.array([2, 4]), (4, 2)), [1, 0])


def test_classes_in_load_swap_labels_and_bayes_columns():
    kw = dict(seed=4, dim=5, train_size=200, test_size=20_000, val_fraction=0.0)
    a = data.load("gaussian_mixture", **kw)
    b = data.load("gaussian_mixture", classes=[1, 0], **kw)
    np.testing.assert_array_equal(b.train.y, 1 - a.train.y)
    np.testing.assert_array_equal(b.bayes_proba, a.bayes_proba[:, ::-1])
    assert abs((b.bayes_proba.argmax(1) == b.test.y).mean() - 0.9) < 0.01
    assert b.info.class_names == ("1", "0")
    with pytest.raises(ConfigError, match="valid classes: 0=0, 1=1"):
        data.validate("gaussian_mixture", classes=[0, 2])


def test_train_subset_seeded_before_split_and_noise():
    kw = dict(dim=3, train_size=1000, test_size=10, noise_rate=0.3, val_fraction=0.2)
    a = data.load("gaussian_mixture", seed=1, train_subset=500, **kw)
    assert (a.info.train_size, a.info.val_size) == (400, 100)
    # noise was injected over all 500 (exact count), then the validation part carved out
    assert int(a.train.is_noisy.sum() + a.val.is_noisy.sum()) == 150
    full = data.load("gaussian_mixture", seed=1, **{**kw, "noise_rate": 0.0, "val_fraction": 0.0})
    rows = {r.tobytes() for r in full.train.x}
    assert all(r.tobytes() in rows for r in a.train.x) and all(r.tobytes() in rows for r in a.val.x)
    b = data.load("gaussian_mixture", seed=1, train_subset=500, **kw)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.val.y, b.val.y)
    with pytest.raises(ConfigError, match="only 1000"):
        data.load("gaussian_mixture", seed=1, train_subset=1001, **kw)
    with pytest.raises(ConfigError, match="positive integer"):
        data.validate("gaussian_mixture", train_subset=0)
