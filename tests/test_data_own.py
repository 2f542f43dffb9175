"""The user's own data: .npz in Keras layout and folders of images, normalised by training statistics."""
import numpy as np
import pytest
import tensorflow as tf

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _image_arrays(rng, n, shape=(8, 8)):
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 3, n).astype(np.int64)


def test_npz_grey_images(tmp_path):
    rng = np.random.default_rng(0)
    x_tr, y_tr = _image_arrays(rng, 50)
    x_te, y_te = _image_arrays(rng, 20)
    p = _npz(tmp_path / "d.npz", x_train=x_tr, y_train=y_tr[:, None], x_test=x_te, y_test=y_te)
    b = data.load("npz", path=p, val_fraction=0.2, noise_rate=0.4, augment="standard")
    assert b.info.input_shape == (8, 8, 1) and b.info.num_classes == 3 and b.info.class_names == ("0", "1", "2")
    assert (len(b.train), len(b.val), len(b.test)) == (40, 10, 20)
    assert int(b.train.is_noisy.sum() + b.val.is_noisy.sum()) == 20
    np.testing.assert_array_equal(b.test.x[..., 0], x_te)
    np.testing.assert_array_equal(b.test.y, y_te)
    # normalised with the training split's own statistics: exactly zero mean, unit std there
    x = np.concatenate([xb.numpy() for xb in b.inputs_dataset("train", 16)])
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-4
    assert next(iter(b.train_dataset(8, seed=0)))[0].shape == (8, 8, 8, 1)


def test_npz_features_and_class_names(tmp_path):
    rng = np.random.default_rng(1)
    x_tr = rng.normal(5, 3, (40, 6)).astype(np.float64)
    p = _npz(tmp_path / "f.npz", x_train=x_tr, y_train=np.arange(40) % 2, x_test=x_tr[:5],
             y_test=np.zeros(5, int), class_names=np.array(["neg", "pos"]))
    b = data.load("npz", path=p, val_fraction=0.0, classes=["pos", "neg"])
    assert b.train.x.dtype == np.float32 and b.info.class_names == ("pos", "neg")
    np.testing.assert_array_equal(b.train.y, 1 - np.arange(40) % 2)
    x = np.concatenate([xb.numpy() for xb in b.inputs_dataset("train", 16)])
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-5)


def test_npz_errors(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _image_arrays(rng, 10)
    with pytest.raises(ConfigError, match="lacks y_test"):
        data.validate("npz", path=_npz(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x))
    with pytest.raises(ConfigError, match="x_train has 10 examples but y_train has 9"):
        data.validate("npz", path=_npz(tmp_path / "b.npz", x_train=x, y_train=y[:9], x_test=x, y_test=y))
    with pytest.raises(ConfigError, match=r"x_train must have shape"):
        data.validate("npz", path=_npz(tmp_path / "c.npz", x_train=y, y_train=y, x_test=y, y_test=y))
    with pytest.raises(ConfigError, match="x_test examples"):
        data.validate("npz", path=_npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:, :4], y_test=y))
    with pytest.raises(ConfigError, match="uint8"):
        data.load("npz", path=_npz(tmp_path / "e.npz", x_train=x[..., None] / 255.0, y_train=y,
                                   x_test=x[..., None] / 255.0, y_test=y))
    with pytest.raises(ConfigError, match="is not a file"):
        data.validate("npz", path=tmp_path / "missing.npz")
    with pytest.raises(ConfigError, match="needs path"):
        data.validate("npz")
    with pytest.raises(ConfigError, match="takes no path"):
        data.validate("mnist", path=tmp_path)


def _write_folder(root, sizes=None):
    """train/test folders of 6x6 PNGs whose pixel value encodes (class, index)."""
    classes = ["cat", "dog", "emu"]
    for split, n in (("train", 4), ("test", 2)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                size = (sizes or {}).get((split, name, i), 6)
                img = np.full((size, size, 3), 40 * c + i, np.uint8)
                tf.io.write_file(str(d / f"{i}.png"), tf.io.encode_png(img))
    return classes


def test_image_folder(tmp_path):
    classes = _write_folder(tmp_path / "imgs")
    b = data.load("image_folder", path=tmp_path / "imgs", val_fraction=0.0)
    assert b.info.class_names == tuple(classes) and b.info.input_shape == (6, 6, 3)
    assert (len(b.train), len(b.test)) == (12, 6)
    # every image sits with its own folder's label
    np.testing.assert_array_equal(b.train.x[:, 0, 0, 0] // 40, b.train.y)
    np.testing.assert_array_equal(b.test.x[:, 0, 0, 0] // 40, b.test.y)
    again = data.load("image_folder", path=tmp_path / "imgs", val_fraction=0.0)
    np.testing.assert_array_equal(again.train.x, b.train.x)  # order does not depend on tfds shuffling
    x = np.concatenate([xb.numpy() for xb in b.inputs_dataset("train", 5)])
    assert abs(x.mean()) < 1e-4


def test_image_folder_errors(tmp_path):
    _write_folder(tmp_path / "mixed", sizes={("train", "dog", 1): 7})
    with pytest.raises(ConfigError, match="same size"):
        data.load("image_folder", path=tmp_path / "mixed")
    (tmp_path / "only_train" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no .png/.jpg images"):
        data.validate("image_folder", path=tmp_path / "only_train")
    tf.io.write_file(str(tmp_path / "only_train" / "train" / "a" / "0.png"),
                     tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ConfigError, match="no test/<class>/ folders"):
        data.validate("image_folder", path=tmp_path / "only_train")
    with pytest.raises(ConfigError, match="not a folder"):
        data.validate("image_folder", path=tmp_path / "nothing")
    _write_folder(tmp_path / "ok")
    with pytest.raises(ConfigError, match="unknown class 'cow'.*0=cat"):
        data.validate("image_folder", path=tmp_path / "ok", classes=["cow", "cat"])


def test_image_folder_refusals_name_the_class_or_file(tmp_path):
    _write_folder(tmp_path / "extra")
    d = tmp_path / "extra" / "test" / "fox"
    d.mkdir()
    tf.io.write_file(str(d / "0.png"), tf.io.encode_png(np.zeros((6, 6, 3), np.uint8)))
    with pytest.raises(ConfigError, match=r"test/ has class\(es\) fox that train/ lacks"):
        data.validate("image_folder", path=tmp_path / "extra")   # check: before anything is trained or written

    # not an image at all (or empty): refused by the cheap check, from the header
    _write_folder(tmp_path / "text")
    (tmp_path / "text" / "test" / "emu" / "1.png").write_text("hello")
    with pytest.raises(ConfigError, match=r"cannot decode .*text/test/emu/1\.png: not a PNG, JPEG"):
        data.validate("image_folder", path=tmp_path / "text")
    (tmp_path / "text" / "test" / "emu" / "1.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"cannot decode .*text/test/emu/1\.png: an empty file"):
        data.validate("image_folder", path=tmp_path / "text")

    # a PNG header on broken data: named when read decodes it, with TF's reason but not its kernel's name
    _write_folder(tmp_path / "broken")
    bad = tmp_path / "broken" / "train" / "dog" / "2.png"
    bad.write_bytes(bad.read_bytes()[:40])
    data.validate("image_folder", path=tmp_path / "broken")
    with pytest.raises(ConfigError, match=r"cannot decode .*broken/train/dog/2\.png: Invalid PNG\b") as e:
        data.load("image_folder", path=tmp_path / "broken")
    assert "function_node" not in str(e.value) and "Op:" not in str(e.value) and "\n" not in str(e.value)

    # two sizes: one line naming the first file, the odd one and both sizes, already from the check
    _write_folder(tmp_path / "sizes", sizes={("test", "emu", 1): 5})
    with pytest.raises(ConfigError, match=r"train/cat/0\.png is 6x6 and .*test/emu/1\.png is 5x5") as e:
        data.validate("image_folder", path=tmp_path / "sizes")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"test/emu/1\.png is 5x5"):
        data.load("image_folder", path=tmp_path / "sizes")


def test_image_folder_header_sizes_are_the_decoded_sizes(tmp_path):
    """JPEG and PNG sizes read from the headers (width x height) agree with TensorFlow's decoding."""
    from keras_sdd.data.own_data import _header_size

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 9, 3), dtype=np.uint8)      # height 5, width 9
    for name, encoded in (("a.png", tf.io.encode_png(img)), ("b.jpg", tf.io.encode_jpeg(img)),
                          ("c.jpg", tf.io.encode_jpeg(img, progressive=True, xmp_metadata="<x/>" * 50))):
        (tmp_path / name).write_bytes(encoded.numpy())
        assert _header_size(str(tmp_path / name)) == (9, 5), name
    for c in ("a", "b"):       # JPEG and PNG mixed in one folder: fine when the sizes agree
        for split in ("train", "test"):
            (tmp_path / "mix" / split / c).mkdir(parents=True)
            (tmp_path / "mix" / split / c / "0.jpg").write_bytes((tmp_path / "b.jpg").read_bytes())
            (tmp_path / "mix" / split / c / "1.png").write_bytes((tmp_path / "a.png").read_bytes())
    b = data.load("image_folder", path=tmp_path / "mix", val_fraction=0.0)
    assert b.info.input_shape == (5, 9, 3) and len(b.train) == 4
