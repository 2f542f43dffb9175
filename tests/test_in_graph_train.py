"""--input_pipeline=in_graph: the same batches as tf.data, hence bit-identical studies, by a faster road.

The batches a compiled call builds for itself must equal ``DataBundle.train_dataset``'s (order, augmentation,
partial last batch, cached teacher logits, resumed epochs, executions cut at the epoch's end), and a study trained
either way must record the same numbers, for the plain, gradual-tfmot, distillation and XLA train functions."""
import numpy as np
import pytest
import tensorflow as tf

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig
from keras_sdd.data.bundle import DataBundle, DatasetInfo, Split
from keras_sdd.study import runner
from keras_sdd.study.records import TIME_FIELDS, read_rounds
from keras_sdd.training import in_graph_train


def _bundle(n=23, augment="none"):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (n, 6, 6, 2), dtype=np.uint8)
    y = rng.integers(0, 3, n)
    info = DatasetInfo("toy", 3, (6, 6, 2), ("0", "1", "2"), n, 0, n, "none", 0.0, 0.0)
    return DataBundle(info, Split(x, y, y), None, Split(x, y, y), augment=augment)


def _in_graph_batches(bundle, batch_size, spe, seed, initial_epoch, epochs, extra=None):
    """What the in-graph train function sees: for each execution element, its steps' batches, in order."""
    batches = bundle.in_graph_batches(batch_size, extra)
    steps = bundle.steps_per_epoch(batch_size)
    out = []
    calls = -(-steps // spe) * (epochs - initial_epoch)
    for element in bundle.train_executions(batch_size, spe, seed=seed, initial_epoch=initial_epoch,
                                           epochs=epochs).take(calls):
        start, plan = int(element["start"]), batches.plan(element)
        for s in range(start, min(start + spe, steps)):
            out.append(tf.nest.map_structure(lambda t: t.numpy(), batches.batch(plan, tf.constant(s, tf.int64))))
    return out


def _flat(batches):
    return [tf.nest.flatten(b) for b in batches]


@pytest.mark.parametrize("augment", ["none", "standard"])
@pytest.mark.parametrize("spe, initial_epoch", [(1, 0), (2, 1), (4, 0), (100, 2)])
def test_batches_equal_those_of_tf_data(augment, spe, initial_epoch):
    bundle = _bundle(augment=augment)
    extra = np.random.default_rng(1).normal(size=(23, 3)).astype(np.float32) if spe == 4 else None
    want = [b for b in bundle.train_dataset(5, seed=11, initial_epoch=initial_epoch, epochs=4,
                                            targets_extra=extra)]
    want = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in want]
    got = _in_graph_batches(bundle, 5, spe, 11, initial_epoch, 4, extra)
    assert len(got) == len(want) == 5 * (4 - initial_epoch)          # 23 examples: 4 batches of 5 and one of 3
    assert [b[1].shape[0] if extra is None else b[1][0].shape[0] for b in got][:5] == [5, 5, 5, 5, 3]
    for g, w in zip(_flat(got), _flat(want)):
        assert all(np.array_equal(p, q) for p, q in zip(g, w))


def test_one_element_per_execution_cut_at_the_epoch_end():
    elements = list(_bundle().train_executions(5, 2, seed=7, initial_epoch=1, epochs=3).take(6))
    assert [(int(e["epoch"]), int(e["start"]), int(e["length"])) for e in elements] == [
        (1, 0, 2), (1, 2, 2), (1, 4, 1), (2, 0, 2), (2, 2, 2), (2, 4, 1)]   # 5 steps an epoch: calls of 2, 2, 1
    assert {int(e["seed"]) for e in elements} == {7}


def test_a_stream_made_for_other_executions_is_refused_not_trained_on():
    from keras_sdd import models

    bundle = _bundle()
    model = models.build("fcn", (6, 6, 2), 3, width=8, depth=1, seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=3)
    in_graph_train.use_in_graph_batches(model, bundle.in_graph_batches(5))
    with pytest.raises(tf.errors.InvalidArgumentError, match="another steps_per_execution"):
        model.fit(bundle.train_executions(5, 2, seed=0, epochs=1), epochs=1, steps_per_epoch=5, verbose=0)


TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=300, gmm_test_size=200, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=32, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=2, checkpoint_every_secs=0.0, threads=1,
            track_energy=False, steps_per_execution=4, save_predictions=False)


def _rows(root):
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS and not k.startswith(("energy", "co2"))}
            for r in read_rounds(root)]


def _both(tmp_path, name, **changes):
    rows = {}
    for pipeline in ("in_graph", "tf_data"):
        config = StudyConfig(**{**TINY, **changes, "input_pipeline": pipeline,
                                "logdir": str(tmp_path / f"{name}-{pipeline}")})
        assert runner.run_study(config)["complete"]
        rows[pipeline] = _rows(tmp_path / f"{name}-{pipeline}")
    return rows


@pytest.mark.parametrize("name, changes", [
    ("imp", {}),   # 9 steps an epoch, calls of 4, 4, 1: 9 calls in 3 epochs, as many as steps_per_epoch
    ("gradual", dict(prune_method="tfmot_polynomial", prune_frequency=2, steps_per_execution=1)),
    ("xla", dict(jit_compile=True, steps_per_execution=3)),
])
def test_studies_are_bit_identical(tmp_path, name, changes):
    rows = _both(tmp_path, name, **changes)
    assert len(rows["in_graph"]) == 3 and rows["in_graph"] == rows["tf_data"]
    assert rows["in_graph"][-1]["sparsity"] == pytest.approx(0.75, abs=0.01)


def test_distillation_studies_are_bit_identical(tmp_path):
    runner.run_study(StudyConfig(**{**TINY, "max_rounds": 0, "final_sparsity": 0.3,
                                    "logdir": str(tmp_path / "teacher")}))
    rows = _both(tmp_path, "kd", study="kd", teacher=str(tmp_path / "teacher"), kd_alpha=0.5,
                 kd_temperature=4.0)
    assert rows["in_graph"] == rows["tf_data"] and len(rows["in_graph"]) == 3


def test_auto_is_in_graph_on_a_cpu_alone_and_tf_data_under_a_strategy():
    assert in_graph_train.resolve("auto") is not bool(tf.config.list_physical_devices("GPU"))
    assert in_graph_train.resolve("tf_data") is False and in_graph_train.resolve("in_graph") is True
    assert in_graph_train.resolve("auto", tf.distribute.OneDeviceStrategy("/cpu:0")) is False
    with pytest.raises(ValueError, match="one device"):
        in_graph_train.resolve("in_graph", tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_in_graph_refused_with_a_strategy(tmp_path):
    config = StudyConfig(**{**TINY, "input_pipeline": "in_graph", "strategy": "mirrored",
                            "logdir": str(tmp_path / "s")})
    with pytest.raises(ConfigError, match="--input_pipeline=in_graph feeds one device"):
        runner.run_study(config)
    assert not (tmp_path / "s").exists()


class _Cut(Exception):
    pass


def test_a_study_cut_mid_round_resumes_under_the_other_pipeline(tmp_path, monkeypatch):
    """The pipeline changes how batches are made, not which: a study cut after epoch 1 of round 1 under tf.data
    resumes in-graph from that epoch's checkpoint and records what an uninterrupted run does."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    runner.run_study(StudyConfig(**{**TINY, "input_pipeline": "tf_data", "logdir": str(whole)}))
    original = runner._EpochCheckpoint.on_epoch_end

    def cut_after_epoch_1_of_round_1(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.round_index == 1 and epoch == 0:
            raise _Cut()
    monkeypatch.setattr(runner._EpochCheckpoint, "on_epoch_end", cut_after_epoch_1_of_round_1)
    with pytest.raises(_Cut):
        runner.run_study(StudyConfig(**{**TINY, "input_pipeline": "tf_data", "logdir": str(cut)}))
    monkeypatch.undo()
    assert len(read_rounds(cut)) == 1
    runner.run_study(StudyConfig(**{**TINY, "input_pipeline": "in_graph", "logdir": str(cut), "resume": True}))
    assert _rows(cut) == _rows(whole)


@pytest.mark.parametrize("n", [1, 256, 300])
def test_split_logits_equal_predict(n):
    """The study's compiled evaluation returns model.predict's logits exactly, partial last batch included."""
    from keras_sdd import models
    from keras_sdd.study import evaluate

    bundle = _bundle(n=n)
    model = models.build("fcn", (6, 6, 2), 3, width=8, depth=1, seed=0)
    want = model.predict(bundle.inputs_dataset("train", 256), verbose=0)
    got = evaluate.SplitLogits(model, bundle, 256)("train")
    assert got.shape == (n, 3) and got.dtype == np.float32 and np.array_equal(got, want)
