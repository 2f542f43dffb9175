"""MNIST, Fashion-MNIST, CIFAR-10/100 and CIFAR-10N/100N read with tensorflow-datasets into numpy.

tfds is imported lazily (only when a dataset is read). With ``download=False`` a dataset that tfds has not
prepared is refused at once with a ConfigError saying where it looked and how to fix it. With ``download=True``
and the dataset not yet prepared, the hosts tfds would download from (the dataset's own URLs) are probed first,
a TCP connect of at most ``PROBE_TIMEOUT`` seconds each, in parallel: offline, the refusal comes in seconds
where tfds itself retries for minutes. Where the data is looked for (``--data_dir`` > ``$KERAS_SDD_DATA_DIR/
tensorflow_datasets`` > ``$TFDS_DATA_DIR`` / ``~/tensorflow_datasets``) is decided in ``keras_sdd.data``.
"""
from __future__ import annotations

import logging
import os
import threading
import urllib.parse
import urllib.request
import warnings
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from keras_sdd.data import cifar_n
from keras_sdd.data.registry import DATA_ROOT_ENV, RawData, Request, Source, data_root, register
from keras_sdd.errors import ConfigError

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man
maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout
tulip turtle wardrobe whale willow_tree wolf woman worm""".split())

#: per-channel (mean, std) of the training images on the [0, 1] scale
NORMALIZATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

#: human_label value -> feature name in tfds's own cifar10_n / cifar100_n builders
TFDS_HUMAN_KEYS = {
    "cifar10_n": {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1",
                  "random2": "random_label2", "random3": "random_label3"},
    "cifar100_n": {"noisy": "noise_label"},
}


def _where(data_dir: Optional[str]) -> str:
    if data_dir is not None:
        return f"data_dir {data_dir}"
    default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    root = data_root()
    unused = f"; {DATA_ROOT_ENV}={root} has no tensorflow_datasets/ folder" if root else ""
    return f"tfds's default data_dir ({default}{unused})"


def _tfds_load(name: str, split: str, req: Request, supervised: bool, hint: str = ""):
    """A whole tfds split as numpy (a tuple, or a dict of features). Problems become one-sentence
    ConfigErrors; an unprepared dataset with ``download=False`` fails at once."""
    import tensorflow_datasets as tfds  # lazy: importing tfds costs seconds

    if req.download and not _prepared(tfds, name, req.data_dir):
        unreachable = [h for h, ok in probe_hosts(download_hosts(tfds, name)).items() if not ok]
        if unreachable:
            raise ConfigError(
                f"--download needs internet, and {', '.join(unreachable)} cannot be reached from here: prepare "
                f"{name!r} once on a machine with internet (--download), then copy its tensorflow_datasets folder "
                f"here and point --data_dir (or {DATA_ROOT_ENV}) at it")
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_no_variant_warning)
    try:
        ds = tfds.load(name, split=split, data_dir=req.data_dir, download=req.download, as_supervised=supervised,
                       shuffle_files=False)
        # Stacking moderate batches is ~10x faster than tfds's batch_size=-1 (one huge batch op).
        parts = list(tfds.as_numpy(ds.batch(2048).prefetch(2)))
    except AssertionError as e:
        if req.download:
            raise ConfigError(f"could not download and prepare {name!r} into {_where(req.data_dir)}: "
                              f"{str(e).splitlines()[0]}") from None
        raise ConfigError(
            f"dataset {name!r} is not prepared in {_where(req.data_dir)}; point --data_dir (or {DATA_ROOT_ENV}/"
            f"tensorflow_datasets) at a folder where tensorflow-datasets has prepared it, or allow --download with "
            f"internet access{hint}") from None
    except Exception as e:  # noqa: BLE001  (tfds raises many types; all mean "cannot read this dataset")
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"cannot load {name!r} from {_where(req.data_dir)}: {type(e).__name__}: {first}") \
            from None
    finally:
        absl_logger.removeFilter(_no_variant_warning)
    if not parts:
        raise ConfigError(f"{name} split {split!r} in {_where(req.data_dir)} is empty")
    return tree_concat(parts)


def _no_variant_warning(record) -> bool:
    """Drops tfds's 'Variant folder X has no dataset_info.json' (an unprepared dataset: our refusal says it)."""
    return "has no dataset_info.json" not in record.getMessage()


#: Seconds a download probe waits for one host (name lookup and TCP connect).
PROBE_TIMEOUT = 3.0
#: Download hosts of datasets whose tfds builder lists no URLs (cifar10_n / cifar100_n fetch the CIFAR images).
KNOWN_HOSTS = {"cifar10_n": ("https", "www.cs.toronto.edu"), "cifar100_n": ("https", "www.cs.toronto.edu")}
#: Fallback: tensorflow-datasets' own mirror.
DOWNLOAD_HOST = "storage.googleapis.com"


def download_hosts(tfds, name: str) -> Tuple[Tuple[str, str], ...]:
    """(scheme, host) pairs tfds would download ``name`` from: the hosts of its builder's URLs, else
    ``KNOWN_HOSTS``, else tfds's mirror."""
    hosts = []
    try:
        urls = tfds.builder_cls(name).url_infos or {}
    except Exception:  # noqa: BLE001  (no checksums file: fall back below)
        urls = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname and (parts.scheme, parts.hostname) not in hosts:
            hosts.append((parts.scheme or "https", parts.hostname))
    return tuple(hosts) or (KNOWN_HOSTS.get(name) or ("https", DOWNLOAD_HOST),)


def _address(scheme: str, host: str) -> Tuple[str, int]:
    """Where a connection to ``scheme://host`` goes: the proxy tfds (requests) would use, else the host."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.hostname:
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    return host, 443 if scheme == "https" else 80


def internet_reachable(host: str = DOWNLOAD_HOST, timeout: float = PROBE_TIMEOUT, scheme: str = "https") -> bool:
    """Whether a TCP connection to ``host`` (or the proxy for it) opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection(_address(scheme, host), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def probe_hosts(hosts: Iterable[Tuple[str, str]], timeout: float = PROBE_TIMEOUT) -> Dict[str, bool]:
    """host -> reachable, probed in parallel; a host whose name lookup hangs counts as unreachable after
    ``timeout`` (+0.5) seconds (``socket``'s timeout does not cover the lookup)."""
    result: Dict[str, bool] = {}
    threads = []
    for scheme, host in hosts:
        result[host] = False

        def probe(scheme=scheme, host=host):
            result[host] = internet_reachable(host, timeout, scheme)
        t = threading.Thread(target=probe, name=f"probe-{host}", daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout + 0.5)
    return dict(result)


def _prepared(tfds, name: str, data_dir: Optional[str]) -> bool:
    """Whether tfds has prepared ``name`` in ``data_dir`` (its dataset_info.json exists; builder.is_prepared()
    would log a warning for every unprepared folder)."""
    try:
        return os.path.isfile(os.path.join(tfds.builder(name, data_dir=data_dir).data_dir, "dataset_info.json"))
    except Exception:  # noqa: BLE001  (an unknown or broken builder: let tfds.load say why)
        return False


def tree_concat(parts):
    """Concatenate a list of batches (tuples or dicts of arrays) along the first axis."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(first)))


def _images(x) -> np.ndarray:
    x = np.asarray(x)
    return (x if x.dtype == np.uint8 else x.astype(np.uint8))


def _check_common(req: Request) -> None:
    if req.data_dir is not None and not req.download and not os.path.isdir(req.data_dir):
        raise ConfigError(f"data_dir {req.data_dir} does not exist; pass --data_dir pointing at a folder where "
                          f"tensorflow-datasets has prepared the dataset, or allow --download with internet access")


def _plain(name: str, classes: Tuple[str, ...]) -> Source:
    def check(req: Request):
        _check_common(req)
        return classes

    def read(req: Request) -> RawData:
        x_tr, y_tr = _tfds_load(name, "train", req, supervised=True)
        x_te, y_te = _tfds_load(name, "test", req, supervised=True)
        mean, std = NORMALIZATION[name]
        return RawData(_images(x_tr), np.asarray(y_tr, np.int64), _images(x_te), np.asarray(y_te, np.int64),
                       classes, normalization="constants", mean=mean, std=std)

    return Source(name, read=read, check=check, tfds=True)


def _human(name: str, base: str, classes: Tuple[str, ...]) -> Source:
    valid = tuple(cifar_n.HUMAN_LABEL_KEYS[name])

    def check(req: Request):
        _check_common(req)
        if req.path is not None:
            archive, _ = cifar_n.folder_files(req.path, name)
            cifar_n.pick(cifar_n.read_label_archive(archive), cifar_n.HUMAN_LABEL_KEYS[name][req.human_label],
                         archive)
        return classes

    def read(req: Request) -> RawData:
        mean, std = NORMALIZATION[base]
        if req.path is None:  # tfds's own builder (prepared from the manual files)
            files = " and ".join(cifar_n.FILES[name])
            tr = _tfds_load(name, "train", req, supervised=False,
                            hint=f" (or pass path=<folder holding {files}> to use those labels with tfds {base})")
            key = TFDS_HUMAN_KEYS[name][req.human_label]
            noisy = cifar_n.pick(tr, key, f"tfds {name}")
            x_tr, y_clean = tr["image"], tr["label"]
        else:  # human labels from the authors' files, images from tfds's cifar10/100
            tr = _tfds_load(base, "train", req, supervised=False)
            x_tr, y_clean = tr["image"], np.asarray(tr["label"], np.int64)
            noisy, file_clean = cifar_n.load_human_labels(req.path, name, req.human_label, ids=tr.get("id"))
            if noisy.shape != y_clean.shape:
                raise ConfigError(f"{name} label files hold {noisy.size} labels but tfds {base} has "
                                  f"{y_clean.size} training images")
            mismatch = float(np.mean(file_clean != y_clean))
            if mismatch > 0.001:
                warnings.warn(f"{name}: clean labels of the label files disagree with tfds {base} on "
                              f"{mismatch:.1%} of the images; is the order map right?", stacklevel=2)
        if req.path is None:
            te = _tfds_load(name, "test", req, supervised=False)
            x_te, y_te = te["image"], te["label"]
        else:
            x_te, y_te = _tfds_load(base, "test", req, supervised=True)
        return RawData(_images(x_tr), np.asarray(y_clean, np.int64), _images(x_te), np.asarray(y_te, np.int64),
                       classes, y_train=np.asarray(noisy, np.int64), normalization="constants", mean=mean,
                       std=std, extra_info={"human_label": req.human_label})

    return Source(name, read=read, check=check, human_labels=valid, path="optional", tfds=True)


for _name, _classes in (("mnist", MNIST_CLASSES), ("fashion_mnist", FASHION_MNIST_CLASSES),
                        ("cifar10", CIFAR10_CLASSES), ("cifar100", CIFAR100_CLASSES)):
    register(_plain(_name, _classes))
register(_human("cifar10_n", "cifar10", CIFAR10_CLASSES))
register(_human("cifar100_n", "cifar100", CIFAR100_CLASSES))
