"""CIFAR-N human labels: read without torch, known noise rates, mapping to tfds order, errors."""
import io
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data
from keras_sdd.data import cifar_n

KNOWN_RATES = {"aggre_label": 0.0901, "random_label1": 0.1723, "worse_label": 0.4021}


@pytest.fixture(scope="module")
def folder(shared_data):
    return shared_data / "cifar-n"


def test_cifar10n_rates_and_tfds_order(folder):
    labels = cifar_n.read_label_archive(folder / "CIFAR-10_human.pt")
    assert {"clean_label", "aggre_label", "worse_label", "random_label1", "random_label2",
            "random_label3"} <= set(labels)
    clean = labels["clean_label"]
    assert clean.shape == (50000,) and clean.dtype == np.int64 and np.bincount(clean).tolist() == [5000] * 10
    for key, rate in KNOWN_RATES.items():
        assert abs(np.mean(labels[key] != clean) - rate) <= 1e-4
    order = np.load(folder / "image_order_c10.npy")
    ref = np.load(folder / "CIFAR-10_human_ordered.reconstructed.npy", allow_pickle=True).item()
    for key, want in ref.items():
        np.testing.assert_array_equal(cifar_n.to_tfds_order(labels[key], order), np.asarray(want))
    assert not np.array_equal(labels["aggre_label"], np.asarray(ref["aggre_label"]))  # the order does matter


def test_cifar100n_rate_and_order(folder):
    labels = cifar_n.read_label_archive(folder / "CIFAR-100_human.pt")
    assert abs(np.mean(labels["noisy_label"] != labels["clean_label"]) - 0.4020) <= 1e-4
    assert labels["clean_label"].max() == 99
    ordered = folder / "CIFAR-100_human_ordered.npy"
    if ordered.exists():
        ref = np.load(ordered, allow_pickle=True).item()
        got = cifar_n.to_tfds_order(labels["noisy_label"], np.load(folder / "image_order_c100.npy"))
        np.testing.assert_array_equal(got, np.asarray(ref["noise_label"]))


def test_missing_key_names_the_keys(folder):
    labels = cifar_n.read_label_archive(folder / "CIFAR-100_human.pt")
    with pytest.raises(ConfigError, match="keys available: .*clean_label.*noisy_label"):
        cifar_n.pick(labels, "aggre_label")


def test_ids_give_original_indices():
    np.testing.assert_array_equal(cifar_n.original_indices([b"train_00002", b"train_00000", "train_00001"]),
                                  [2, 0, 1])
    assert cifar_n.original_indices([b"train_00002", b"train_00002", b"train_00000"]) is None
    assert cifar_n.original_indices([b"xyz", b"abc"]) is None


def test_reads_real_torch_tensors_without_torch(tmp_path, monkeypatch):
    """A .pt holding torch tensors (storages in data/<key>) is rebuilt from raw bytes, no torch needed."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only used as a pickled name")

    LongStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    LongStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "LongStorage", "_rebuild_tensor_v2"
    torch.LongStorage, utils._rebuild_tensor_v2 = LongStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    values = np.arange(12, dtype=np.int64) * 3

    class FakeTensor:
        def __init__(self, key, offset, size, stride):
            self.args = (key, offset, size, stride)

        def __reduce__(self):
            key, offset, size, stride = self.args
            return _rebuild_tensor_v2, (("storage", key), offset, size, stride, False, {})

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and obj and obj[0] == "storage":
                return ("storage", LongStorage, obj[1], "cpu", 12)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"clean_label": FakeTensor("0", 0, (12,), (1,)),
                                   "worse_label": FakeTensor("0", 2, (5,), (2,))})
    path = tmp_path / "t.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("t/data.pkl", buf.getvalue())
        z.writestr("t/data/0", values.astype("<i8").tobytes())
    got = cifar_n.read_label_archive(path)
    np.testing.assert_array_equal(got["clean_label"], values)
    np.testing.assert_array_equal(got["worse_label"], values[2:12:2])


def test_refuses_arbitrary_code(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/data.pkl", pickle.dumps({"x": print}, protocol=2))
    with pytest.raises(ConfigError, match="refusing"):
        cifar_n.read_label_archive(path)


def _write_label_folder(folder, n, tfds_labels, rng, keys=("aggre_label", "worse_label")):
    """Fake CIFAR-N files for n mock images: original order = tfds order permuted by `order`."""
    order = rng.permutation(n)  # tfds position j holds original example order[j]
    clean = np.empty(n, np.int64)
    clean[order] = tfds_labels
    labels = {"clean_label": clean}
    for k in keys:
        labels[k] = rng.integers(0, 10, n).astype(np.int64)
    folder.mkdir()
    with zipfile.ZipFile(folder / "CIFAR-10_human.pt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(labels, protocol=2))
    np.save(folder / "image_order_c10.npy", order)
    return labels, order


def test_path_variant_combines_files_with_tfds_images(tmp_path):
    from keras_sdd.data.tfds_sources import tree_concat

    rng = np.random.default_rng(0)
    with tfds.testing.mock_data(num_examples=30):
        raw = tree_concat(list(tfds.as_numpy(tfds.load("cifar10", split="train", as_supervised=True).batch(64))))
        labels, order = _write_label_folder(tmp_path / "cn", 30, raw[1], rng)
        b = data.load("cifar10_n", path=tmp_path / "cn", human_label="worse", val_fraction=0.0)
    np.testing.assert_array_equal(b.train.x, raw[0])
    np.testing.assert_array_equal(b.train.y_clean, raw[1])
    np.testing.assert_array_equal(b.train.y, labels["worse_label"][order])
    with pytest.raises(ConfigError, match="no 'random_label1'; keys available: aggre_label, clean_label"):
        data.validate("cifar10_n", path=tmp_path / "cn", human_label="random1")
    with pytest.raises(ConfigError, match="lacks CIFAR-100_human.pt, image_order_c100.npy"):
        data.validate("cifar100_n", path=tmp_path / "cn")


def test_label_files_found_through_the_data_root(tmp_path, monkeypatch):
    """Without path, CIFAR-N takes its label files from $KERAS_SDD_DATA_DIR/cifar-n; path wins over it."""
    (tmp_path / "root" / "cifar-n").mkdir(parents=True)
    monkeypatch.setenv("KERAS_SDD_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(ConfigError, match=f"cifar10_n path {tmp_path / 'root' / 'cifar-n'} lacks CIFAR-10_human"):
        data.validate("cifar10_n")
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match=f"cifar10_n path {tmp_path / 'mine'} lacks"):
        data.validate("cifar10_n", path=tmp_path / "mine")
    monkeypatch.setenv("KERAS_SDD_DATA_DIR", str(tmp_path / "elsewhere"))   # no cifar-n/ there: tfds's builder
    data.validate("cifar10_n")
