"""DataBundle pipelines: epoch e is a pure function of (seed, e); evaluation streams keep stored order."""
import json
import math

import numpy as np
import pytest

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data
from keras_sdd.data.augment import PAD
from keras_sdd.data.bundle import DataBundle, DatasetInfo, Split


def _info(n, shape, k):
    return DatasetInfo("toy", k, shape, tuple(str(i) for i in range(k)), n, 0, n, "none", 0.0, 0.0)


def _features(n=23):
    """Features whose single value is the example index, so batches show which examples they hold."""
    x = np.arange(n, dtype=np.float32)[:, None]
    y = np.arange(n, dtype=np.int64) % 3
    return DataBundle(_info(n, (1,), 3), Split(x, y, y), None, Split(x, y, y))


def _images(n=10, size=6, augment="standard", channels=2):
    """uint8 images (distinct per example) with y = example index."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (n, size, size, channels), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64)
    return DataBundle(_info(n, (size, size, channels), n), Split(x, y, y), None, Split(x, y, y),
                      augment=augment)


def _epochs(ds, steps, epochs):
    batches = [(xb.numpy(), yb.numpy()) for xb, yb in ds.take(steps * epochs)]
    return [batches[e * steps:(e + 1) * steps] for e in range(epochs)]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])
                                    for p, q in zip(a, b))


def test_feature_stream_reproducible_resumable_and_complete():
    b = _features()
    steps = b.steps_per_epoch(5)
    assert steps == math.ceil(23 / 5) == 5
    ds = b.train_dataset(5, seed=7, epochs=4)
    assert ds.element_spec[0].shape.as_list() == [None, 1]
    run = _epochs(ds, steps, 4)
    assert sum(1 for _ in ds) == 4 * steps  # finite: exactly the requested epochs
    assert _same(run[0], _epochs(b.train_dataset(5, seed=7, epochs=4), steps, 1)[0])
    resumed = _epochs(b.train_dataset(5, seed=7, initial_epoch=2, epochs=4), steps, 2)
    assert _same(run[2], resumed[0]) and _same(run[3], resumed[1])
    assert not _same(run[0], run[1])
    assert not _same(run[0], _epochs(b.train_dataset(5, seed=8), steps, 1)[0])
    for epoch in run:
        ids = np.concatenate([xb[:, 0] for xb, _ in epoch]).astype(int)
        assert sorted(ids) == list(range(23))  # every example once per epoch
        assert [len(xb) for xb, _ in epoch] == [5, 5, 5, 5, 3]  # the last partial batch is kept
        for xb, yb in epoch:
            np.testing.assert_array_equal(yb, xb[:, 0].astype(int) % 3)
    endless = b.train_dataset(5, seed=7)  # epochs=None
    assert _same(_epochs(endless, steps, 4)[3], run[3])


def test_standard_augmentation_is_pad_crop_flip_and_resumable():
    b = _images()
    run = _epochs(b.train_dataset(4, seed=1, epochs=3), 3, 3)
    assert _same(run[1], _epochs(b.train_dataset(4, seed=1, initial_epoch=1, epochs=3), 3, 2)[0])
    x = b.train.x
    padded = np.pad(x, [(0, 0), (PAD, PAD), (PAD, PAD), (0, 0)])
    seen_offsets, seen_flips = set(), set()
    for epoch in run:
        for xb, yb in epoch:
            for img, i in zip(xb, yb):
                raw = np.rint(img * 255).astype(np.uint8)  # no mean/std set: inputs are x / 255
                found = [(oy, ox, f) for oy in range(2 * PAD + 1) for ox in range(2 * PAD + 1) for f in (0, 1)
                         if np.array_equal(raw, (lambda c: c[:, ::-1] if f else c)(
                             padded[i, oy:oy + 6, ox:ox + 6]))]
                assert found, "output is not a pad-4 crop (+flip) of its own image"
                seen_offsets.add(found[0][:2])
                seen_flips.add(found[0][2])
    assert len(seen_offsets) > 10 and seen_flips == {0, 1}
    # the same example is augmented differently in different epochs
    assert not _same(run[0], run[1])


def test_eval_and_inputs_streams_fixed_order_and_normalised():
    x = np.random.default_rng(0).integers(0, 256, (9, 4, 4, 3), dtype=np.uint8)
    y, yc = np.arange(9) % 2, np.zeros(9, np.int64)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    b = DataBundle(_info(9, (4, 4, 3), 2), Split(x, y, yc), Split(x[:2], y[:2], yc[:2]), Split(x, yc, yc),
                   mean=mean, std=std, augment="standard")
    want = (x / 255.0 - np.array(mean)) / np.array(std)
    got = np.concatenate([xb.numpy() for xb in b.inputs_dataset("train", 4)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # no augmentation, stored order
    noisy = np.concatenate([yb.numpy() for _, yb in b.eval_dataset("train", 4)])
    clean = np.concatenate([yb.numpy() for _, yb in b.eval_dataset("train", 4, labels="clean")])
    np.testing.assert_array_equal(noisy, y)
    np.testing.assert_array_equal(clean, yc)
    assert len(list(b.eval_dataset("val", 4))) == 1
    with pytest.raises(ConfigError, match="noisy, clean"):
        b.eval_dataset("train", 4, labels="true")
    with pytest.raises(ConfigError, match="train, val, test"):
        b.split("dev")
    assert b.split("val") is b.val
    with pytest.raises(ConfigError, match="no validation split"):
        _features().split("val")


def test_info_json_and_keras_fit_resume():
    b = data.load("gaussian_mixture", seed=0, dim=4, train_size=60, test_size=30, noise_rate=0.2)
    d = b.info.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["train_size"] == 54 and d["val_size"] == 6 and d["noise_rate"] == 0.2
    assert np.mean(b.train.is_noisy) == pytest.approx(d["train_noise_rate"])
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(4,))])
    model.compile("sgd", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps = b.steps_per_epoch(16)
    hist = model.fit(b.train_dataset(16, seed=3, initial_epoch=1, epochs=3), steps_per_epoch=steps, epochs=3,
                     initial_epoch=1, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert model.predict(b.inputs_dataset("test", 16), verbose=0).shape == (30, 2)


def _check_randaugment(channels=3):
    with pytest.raises(ConfigError, match="grey or RGB"):
        _images(augment="randaugment", channels=2)
    b = _images(n=5, size=8, augment="randaugment", channels=channels)
    run = _epochs(b.train_dataset(2, seed=5, epochs=2), 3, 2)
    again = _epochs(b.train_dataset(2, seed=5, epochs=2), 3, 2)
    resumed = _epochs(b.train_dataset(2, seed=5, initial_epoch=1, epochs=2), 3, 1)
    assert _same(run[0], again[0]) and _same(run[1], again[1]) and _same(run[1], resumed[0])
    assert not _same(run[0], run[1])
    assert all(np.isfinite(xb).all() and xb.shape[1:] == (8, 8, channels) for xb, _ in run[0])
    # it does change the images, beyond the crop: most outputs are no crop/flip of their input
    assert np.mean([np.abs(xb - b.train.x[yb] / 255.0).mean() for xb, yb in run[0]]) > 0.05


def test_randaugment_deterministic_and_resumable(monkeypatch):
    """The stateless RandAugment machinery on a light layer (one colour op per image): tracing the default
    layer (three ops, with shear/translate) takes ~30 s on a busy CPU; the slow test below runs that one."""
    pytest.importorskip("keras_cv")
    from keras_sdd.data import augment

    light = augment.RandAugmenter(augmentations_per_image=1, geometric=False)
    monkeypatch.setattr(augment, "get_randaugmenter", lambda: light)
    _check_randaugment()


@pytest.mark.slow
@pytest.mark.parametrize("channels", [3, 1])
def test_randaugment_default_layer_deterministic_and_resumable(channels):
    pytest.importorskip("keras_cv")
    _check_randaugment(channels)
