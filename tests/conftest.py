"""Shared test settings: where the prepared real data lives, and small-CPU TensorFlow defaults."""
import os
import pathlib

import pytest

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Real MNIST / Fashion-MNIST (tfds 4.9.10) and the CIFAR-N label files: the package's own data-root setting
#: KERAS_SDD_DATA_DIR (tensorflow_datasets/ and cifar-n/ inside), else the old test-only name
#: KERAS_SDD_TEST_DATA, else ../shared/data beside the checkout.
SHARED_DATA = pathlib.Path(os.environ.get("KERAS_SDD_DATA_DIR") or os.environ.get("KERAS_SDD_TEST_DATA")
                           or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data():
    """The folder holding ``tensorflow_datasets/`` and ``cifar-n/``; tests needing it skip when it is absent
    locally, but fail in CI (CI=true), where it must be present."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"prepared data not found at {SHARED_DATA}; set KERAS_SDD_DATA_DIR")
        pytest.skip(f"prepared data not found at {SHARED_DATA}; set KERAS_SDD_DATA_DIR")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _hermetic_data_root(monkeypatch):
    """Tests see no data root from the environment (the package would honour KERAS_SDD_DATA_DIR where a test
    expects tfds's mocks or its own folders); tests wanting real data use ``shared_data``, tests of the setting
    set it themselves."""
    monkeypatch.delenv("KERAS_SDD_DATA_DIR", raising=False)


class Killed(Exception):
    """Raised by ``kill_during`` where a kill -9 would have struck."""


@pytest.fixture
def kill_during():
    """``with kill_during(round, epoch, where=''):`` makes a study stop dead right after that epoch's checkpoint
    (of a study whose folder path contains ``where``), as a kill would; restored afterwards."""
    import contextlib

    from keras_sdd.study import runner

    @contextlib.contextmanager
    def arm(round_index: int, epoch: int, where: str = ""):
        original = runner._EpochCheckpoint.on_epoch_end

        def killing(self, e, logs=None):
            original(self, e, logs)
            if self.round_index == round_index and e == epoch and where in str(self.ckpts.dir):
                raise Killed()
        runner._EpochCheckpoint.on_epoch_end = killing
        try:
            yield Killed
        finally:
            runner._EpochCheckpoint.on_epoch_end = original
    return arm


#: The one tiny study of the test suite: a 10-dimensional linear Gaussian mixture, an FCN of 16 units, 3 epochs a
#: round, half the remaining weights pruned per round, 3 pruning rounds — seconds on a CPU.
TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0, threads=1,
            track_energy=False)


@pytest.fixture
def tiny_config():
    """``tiny_config(logdir, **changes)``: the StudyConfig of the tiny study, with changes."""
    from keras_sdd.config import StudyConfig

    def make(logdir, **changes):
        return StudyConfig(**{**TINY, "logdir": str(logdir), **changes})
    return make


@pytest.fixture
def run_keras3():
    """``run_keras3(args, backend="tensorflow", timeout=300, cwd=REPO)``: runs a Python child (``args`` after the
    interpreter) with ``KERAS_BACKEND=backend``, the checkout first on sys.path and no Keras 2 pin inherited from
    this process (conftest pins it); returns the CompletedProcess (stdout and stderr together). JAX children are
    skipped where jax is not installed locally, and fail in CI."""
    import subprocess
    import sys

    def run(args, backend="tensorflow", timeout=300, cwd=REPO):
        if backend == "jax":
            try:
                import jax  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
            except ImportError:
                if os.environ.get("CI") == "true":
                    pytest.fail("jax is not installed; the test extra installs it")
                pytest.skip("jax not installed (pip install -e '.[test]')")
        env = dict(os.environ)
        env.pop("TF_USE_LEGACY_KERAS", None)
        env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO), env.get("PYTHONPATH")])))
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    return run
