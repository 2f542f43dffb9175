"""tfds sources: the real MNIST / Fashion-MNIST (prepared offline) and CIFAR pipelines on tfds mock data."""
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data

def _raw(name, **kw):
    """A whole mock tfds split as numpy (tfds's batch_size=-1 aborts on mock data in tfds 4.9.10)."""
    from keras_sdd.data.tfds_sources import tree_concat

    return tree_concat(list(tfds.as_numpy(tfds.load(name, split="train", **kw).batch(1000))))


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(shared_data):
    return data.load("mnist", data_dir=shared_data / "tensorflow_datasets", noise_rate=0.2, seed=3)


def test_real_mnist(mnist):
    b = mnist
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.info.input_shape == (28, 28, 1) and b.train.x.dtype == np.uint8
    assert b.info.num_classes == 10 and b.info.class_names[3] == "3"
    all_clean = np.concatenate([b.train.y_clean, b.val.y_clean])
    assert np.bincount(all_clean).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(b.test.y).tolist() == MNIST_TEST_COUNTS
    np.testing.assert_array_equal(b.test.y, b.test.y_clean)
    # noise over the 60000 (exact count), then the validation split
    assert int(b.train.is_noisy.sum() + b.val.is_noisy.sum()) == 12000
    assert abs(b.info.train_noise_rate - 0.2) < 0.01
    assert b.train.y.min() == 0 and b.train.y.max() == 9
    # standard MNIST normalisation: roughly zero mean, unit std
    x = next(iter(b.eval_dataset("test", 4096)))[0].numpy()
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    xb, yb = next(iter(b.train_dataset(256, seed=0)))
    assert xb.shape == (256, 28, 28, 1) and xb.dtype.name == "float32" and yb.dtype.name == "int64"


def test_real_fashion_mnist_class_subset(shared_data):
    b = data.load("fashion_mnist", data_dir=str(shared_data / "tensorflow_datasets"), classes=[3, "Bag"],
                  val_fraction=0.25, normalize=False)
    assert b.info.class_names == ("Dress", "Bag") and b.info.num_classes == 2
    assert (len(b.train), len(b.val), len(b.test)) == (9000, 3000, 2000)
    assert np.bincount(np.concatenate([b.train.y, b.val.y])).tolist() == [6000, 6000]
    assert np.bincount(b.test.y).tolist() == [1000, 1000]
    # bags are wider than dresses: the mean column profile tells the relabelled classes apart
    cols = lambda x: (x[..., 0] > 0).mean(axis=(0, 1))  # noqa: E731
    assert cols(b.train.x[b.train.y == 1])[[4, 23]].mean() > cols(b.train.x[b.train.y == 0])[[4, 23]].mean()
    x = next(iter(b.inputs_dataset("test", 512))).numpy()
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9  # normalize=False: [0, 1] only


def test_not_prepared_offline_is_a_quick_config_error(tmp_path):
    t = time.time()
    with pytest.raises(ConfigError) as e:
        data.load("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "'mnist'" in msg and str(tmp_path) in msg and "--data_dir" in msg and "--download" in msg
    with pytest.raises(ConfigError, match="does not exist"):
        data.validate("cifar10", data_dir=tmp_path / "missing")
    assert time.time() - t < 10


def test_mock_cifar10_noise_and_split():
    with tfds.testing.mock_data(num_examples=60):
        b = data.load("cifar10", noise_type="pairflip", noise_rate=0.25, val_fraction=0.2, seed=1)
        raw_x, raw_y = _raw("cifar10", as_supervised=True)
    assert (len(b.train), len(b.val), len(b.test)) == (48, 12, 60)
    assert b.info.input_shape == (32, 32, 3) and b.info.class_names[0] == "airplane"
    noisy = np.concatenate([b.train.is_noisy, b.val.is_noisy])
    assert noisy.sum() == 15
    flipped_y = np.concatenate([b.train.y, b.val.y])[noisy]
    np.testing.assert_array_equal(flipped_y, (np.concatenate([b.train.y_clean, b.val.y_clean])[noisy] + 1) % 10)
    # train + val are the tfds training set, images and clean labels paired as in tfds
    rows = {r.tobytes(): y for r, y in zip(raw_x, raw_y)}
    assert all(rows[x.tobytes()] == y for x, y in zip(b.train.x, b.train.y_clean))
    assert len(rows) == 60 and len(rows.keys() & {x.tobytes() for x in b.val.x}) == 12
    x = next(iter(b.train_dataset(8, seed=0)))[0].numpy()
    assert x.shape == (8, 32, 32, 3)


def test_mock_cifar100_classes_by_name():
    with tfds.testing.mock_data(num_examples=300):
        b = data.load("cifar100", classes=["whale", "apple", "tank"], val_fraction=0.0)
    assert b.info.class_names == ("whale", "apple", "tank") and b.info.num_classes == 3
    assert set(np.unique(b.train.y)) <= {0, 1, 2} and len(b.train) < 60
    with pytest.raises(ConfigError, match="unknown class 'zebra'"):
        data.validate("cifar100", classes=["zebra", "apple"])


def test_mock_cifar10_n_from_tfds_builder():
    with tfds.testing.mock_data(num_examples=40):
        b = data.load("cifar10_n", human_label="worse", val_fraction=0.0)
        raw = _raw("cifar10_n")
    np.testing.assert_array_equal(b.train.y, raw["worse_label"])
    np.testing.assert_array_equal(b.train.y_clean, raw["label"])
    assert b.info.extras["human_label"] == "worse" and b.info.noise_type == "none"
    assert b.info.train_noise_rate == pytest.approx(np.mean(raw["worse_label"] != raw["label"]))


def test_bad_input_names_the_choices():
    with pytest.raises(ConfigError, match="valid choices: .*cifar10_n.*gaussian_mixture.*mnist"):
        data.validate("imagenet")
    for rate in (1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            data.validate("mnist", noise_rate=rate)
    with pytest.raises(ConfigError, match="none, symmetric, uniform, pairflip"):
        data.validate("mnist", noise_type="asym")
    with pytest.raises(ConfigError, match="aggre, worse, random1, random2, random3"):
        data.validate("cifar10_n", human_label="best")
    with pytest.raises(ConfigError, match="noisy"):
        data.validate("cifar100_n", human_label="aggre")
    with pytest.raises(ConfigError, match="human labels"):
        data.validate("cifar10_n", noise_rate=0.2)
    with pytest.raises(ConfigError, match="cifar10_n and cifar100_n only"):
        data.validate("cifar10", human_label="aggre")
    with pytest.raises(ConfigError, match="none, standard, randaugment"):
        data.validate("cifar10", augment="autoaugment")
    with pytest.raises(ConfigError, match=r"val_fraction.*\[0, 1\)"):
        data.validate("mnist", val_fraction=1.0)
    with pytest.raises(ConfigError, match="unknown class 'cat'.*0=0"):
        data.validate("mnist", classes=["cat", 1])
    data.validate("cifar10_n")  # defaults are valid: aggre labels, no synthetic noise


def test_download_offline_fails_in_seconds(monkeypatch, tmp_path):
    from keras_sdd.data import tfds_sources

    probed = []
    monkeypatch.setattr(tfds_sources, "internet_reachable", lambda host, *a, **k: probed.append(host) or False)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"--download needs internet, and storage\.googleapis\.com cannot be "
                                          r"reached.*machine with internet \(--download\).*--data_dir") as e:
        data.load("mnist", data_dir=str(tmp_path), download=True)
    assert time.monotonic() - t0 < 10 and probed == ["storage.googleapis.com"] and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"www\.cs\.toronto\.edu cannot be reached"):   # no URLs in tfds: known
        data.load("cifar10_n", data_dir=str(tmp_path), download=True)


def test_download_hosts_come_from_the_datasets_urls():
    from keras_sdd.data.tfds_sources import download_hosts

    assert download_hosts(tfds, "mnist") == (("https", "storage.googleapis.com"),)
    assert download_hosts(tfds, "fashion_mnist") == (("http", "fashion-mnist.s3-website.eu-central-1.amazonaws.com"),)
    assert download_hosts(tfds, "cifar100") == (("https", "www.cs.toronto.edu"),)


def test_a_hanging_probe_is_bounded(monkeypatch):
    """socket's timeout does not cover the name lookup: a lookup that hangs still counts as offline in time."""
    from keras_sdd.data import tfds_sources

    monkeypatch.setattr(tfds_sources, "internet_reachable", lambda *a, **k: time.sleep(30) or True)
    t0 = time.monotonic()
    assert tfds_sources.probe_hosts([("https", "a.example"), ("http", "b.example")], timeout=0.5) == \
        {"a.example": False, "b.example": False}
    assert time.monotonic() - t0 < 3


def test_a_proxy_is_what_the_probe_reaches(monkeypatch):
    from keras_sdd.data.tfds_sources import _address

    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
                "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert _address("https", "storage.googleapis.com") == ("storage.googleapis.com", 443)
    assert _address("http", "x.example") == ("x.example", 80)
    monkeypatch.setenv("https_proxy", "http://proxy.local:3128")
    assert _address("https", "storage.googleapis.com") == ("proxy.local", 3128)


def test_data_root_setting_is_honoured(monkeypatch, shared_data, tmp_path):
    monkeypatch.setenv("KERAS_SDD_DATA_DIR", str(shared_data))
    b = data.load("mnist", train_subset=100, val_fraction=0.0)        # no data_dir: found through the setting
    assert b.info.input_shape == (28, 28, 1) and len(b.train) == 100
    # --data_dir wins over the setting
    with pytest.raises(ConfigError, match=f"not prepared in data_dir {tmp_path}"):
        data.load("mnist", data_dir=str(tmp_path))
    # a root without tensorflow_datasets/: tfds's default applies, and the refusal says why the root was not used
    monkeypatch.setenv("KERAS_SDD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_default"))
    with pytest.raises(ConfigError, match=r"tfds's default data_dir \(.*tfds_default; KERAS_SDD_DATA_DIR=.* has no "
                                          r"tensorflow_datasets/ folder\)"):
        data.load("mnist")


def test_prepared_data_is_never_probed(monkeypatch, shared_data):
    """--download with the data already prepared: no probe, no network."""
    from keras_sdd.data import tfds_sources

    assert tfds_sources._prepared(tfds, "mnist", str(shared_data / "tensorflow_datasets"))
    assert not tfds_sources._prepared(tfds, "cifar10", str(shared_data / "tensorflow_datasets"))
