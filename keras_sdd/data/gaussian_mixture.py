"""A binary Gaussian-mixture task with a known Bayes-optimal classifier.

Linear: two unit-covariance Gaussians at ``±ν/2·u``. XOR: four clusters at ``s1·ν/2·u1 + s2·ν/2·u2``
(``u1 ⟂ u2``, signs ``s1, s2`` uniform), label ``1`` iff the signs differ. Because the Bayes posterior is
exact, a study can compare a network's test predictions with the best achievable ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Optional, Tuple

import numpy as np

from keras_sdd.data.registry import RawData, Request, Source, register
from keras_sdd.errors import ConfigError

TASKS = ("linear", "xor")
DEFAULT_BAYES_ACCURACY = 0.9
_N = NormalDist()


def bayes_accuracy(task: str, nu: float) -> float:
    """Accuracy of the Bayes rule: ``Φ(ν/2)`` for linear, ``p² + (1-p)²`` with ``p = Φ(ν/2)`` for XOR."""
    p = _N.cdf(nu / 2.0)
    return p if task == "linear" else p * p + (1.0 - p) ** 2


def nu_for_accuracy(task: str, accuracy: float) -> float:
    """The separation ``ν`` whose Bayes accuracy is ``accuracy`` (inverse of ``bayes_accuracy``)."""
    if not 0.5 < accuracy < 1.0:
        raise ConfigError(f"bayes_accuracy must lie in (0.5, 1), got {accuracy}")
    p = accuracy if task == "linear" else (1.0 + np.sqrt(2.0 * accuracy - 1.0)) / 2.0
    return 2.0 * _N.inv_cdf(p)


def _log_cosh(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return t + np.log1p(np.exp(-2.0 * t))  # log(2 cosh t); the log 2 cancels in ratios


@dataclass(frozen=True)
class GaussianMixture:
    """The mixture: ``directions`` holds u (linear) or u1, u2 (XOR) as orthonormal rows of shape (k, dim)."""
    task: str
    dim: int
    nu: float
    directions: np.ndarray

    @classmethod
    def create(cls, task: str, dim: int, nu: float, seed) -> "GaussianMixture":
        """Draw random orthonormal direction(s) from ``seed``."""
        k = 1 if task == "linear" else 2
        g = np.random.default_rng(seed).standard_normal((dim, k))
        q, r = np.linalg.qr(g)
        q = q * np.sign(np.diag(r))  # unique QR: directions uniform on the sphere
        return cls(task, dim, float(nu), q.T.copy())

    def sample(self, n: int, seed) -> Tuple[np.ndarray, np.ndarray]:
        """``n`` iid examples: float32 features (n, dim) and int64 labels (equal priors)."""
        rng = np.random.default_rng(seed)
        a = self.nu / 2.0
        noise = rng.standard_normal((n, self.dim))
        if self.task == "linear":
            y = rng.integers(0, 2, n)
            x = noise + np.outer(a * (2 * y - 1), self.directions[0])
        else:
            s = rng.choice(np.array([-1.0, 1.0]), size=(n, 2))
            y = (s[:, 0] != s[:, 1]).astype(np.int64)
            x = noise + a * s @ self.directions
        return x.astype(np.float32), y.astype(np.int64)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Exact Bayes posterior ``P(y|x)``, shape (n, 2), float64."""
        z = np.asarray(x, np.float64) @ self.directions.T
        if self.task == "linear":
            logit = self.nu * z[:, 0]
        else:  # class 1 (signs differ) ∝ cosh(a(z1-z2)), class 0 ∝ cosh(a(z1+z2))
            a = self.nu / 2.0
            logit = _log_cosh(a * (z[:, 0] - z[:, 1])) - _log_cosh(a * (z[:, 0] + z[:, 1]))
        p1 = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        return np.stack([1.0 - p1, p1], axis=1)


OPTIONS = {"task": "linear", "dim": 100, "nu": None, "bayes_accuracy": None,
           "train_size": 10000, "test_size": 5000}


def _int_option(opts, key, minimum):
    v = opts[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ConfigError(f"gaussian_mixture option {key} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def resolve_options(options) -> dict:
    """Fill defaults, check values, and settle ``nu`` (from ``bayes_accuracy`` or the 0.9 default)."""
    opts = {**OPTIONS, **dict(options)}
    if opts["task"] not in TASKS:
        raise ConfigError(f"gaussian_mixture task must be one of {', '.join(TASKS)}, got {opts['task']!r}")
    opts["dim"] = _int_option(opts, "dim", 1 if opts["task"] == "linear" else 2)
    opts["train_size"] = _int_option(opts, "train_size", 2)
    opts["test_size"] = _int_option(opts, "test_size", 1)
    nu, acc = opts["nu"], opts["bayes_accuracy"]
    if nu is not None and acc is not None:
        raise ConfigError("gaussian_mixture takes nu or bayes_accuracy, not both")
    if nu is not None:
        if isinstance(nu, bool) or not isinstance(nu, (int, float, np.floating, np.integer)) or not nu > 0:
            raise ConfigError(f"gaussian_mixture nu must be a positive number, got {nu!r}")
        nu = float(nu)
    else:
        acc = DEFAULT_BAYES_ACCURACY if acc is None else acc
        if isinstance(acc, bool) or not isinstance(acc, (int, float, np.floating)):
            raise ConfigError(f"bayes_accuracy must be a number in (0.5, 1), got {acc!r}")
        nu = nu_for_accuracy(opts["task"], float(acc))
    opts["nu"] = nu
    opts["bayes_accuracy"] = bayes_accuracy(opts["task"], nu)
    return opts


def _check(req: Request) -> Optional[Tuple[str, ...]]:
    resolve_options(req.options)
    return ("0", "1")


def _read(req: Request) -> RawData:
    o = resolve_options(req.options)
    seq = np.random.SeedSequence([int(req.seed), 0x6A55])
    s_dir, s_train, s_test = seq.spawn(3)
    mix = GaussianMixture.create(o["task"], o["dim"], o["nu"], s_dir)
    x_tr, y_tr = mix.sample(o["train_size"], s_train)
    x_te, y_te = mix.sample(o["test_size"], s_test)
    return RawData(x_tr, y_tr, x_te, y_te, ("0", "1"), test_bayes_proba=mix.proba(x_te),
                   normalization="none",
                   extra_info={"task": o["task"], "dim": o["dim"], "nu": o["nu"],
                               "bayes_accuracy": o["bayes_accuracy"]})


register(Source("gaussian_mixture", read=_read, check=_check, options=OPTIONS, images=False))
