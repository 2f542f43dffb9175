"""Replicates packed in one compiled step: ``--replicates=R`` trains the studies of seeds s, s+1, …, s+R−1 together.

Why: seed 2's hundreds of small MLPs leave a core (or a GPU) mostly idle; R small models in one compiled call
cost little more than one. Each replicate is an ordinary study, assembled exactly as if run alone
(``assemble``: its own data bundle — label-noise draw, subset, validation split —, initialisation, optimizer,
schedule and masks) in ``<logdir>/seed=S``, with the usual files (config.json with its own seed, rounds.csv,
summary.json, checkpoints, TensorBoard), readable by ``apps.report`` and ``load_round`` as if run alone, plus
``packed.json`` saying it was trained packed.

What is packed: a round's training runs as one ``tf.function`` call per ``steps_per_execution`` steps for all R
replicates. ``StackedStep`` (the default path, for plain Dense stacks: the FCNs) holds each Dense layer of the R
students as one kernel with a leading replicate axis (plus its mask and bias), so a step is one batched matmul
per layer, one gather for all R batches (without augmentation) and one optimizer update per variable; the replicates' weights,
masks and optimizer slots are loaded into it at the round's start and stored back before every checkpoint,
rewind capture and the round's end. The fallback (one branch per replicate) calls the R wrapped students side
by side under one GradientTape over the sum of their losses (branches share no weight, so each gradient is its
own loss's) and lets each replicate's optimizer apply its own. Either way each replicate draws *its own*
batches from its own bundle and shuffle seed, so its batch order is that of the separate study: nothing of
the training is shared but the compiled call. Pruning (one global magnitude threshold per replicate, over that
replicate's kernels only), rewinding, evaluation and records go through the same code as a single study
(``RoundLoop``'s methods on one loop per replicate); all replicates' logits on a split come from one call.

What differs from separate runs: float summation order inside the packed graph (results agree to float
precision, not bit for bit); ``wall_time_s`` and the energy columns of a row are the packed round's divided by
R (the replicate's share). Kill-anywhere resume: every checkpoint is written for all replicates before any
``latest.json`` moves, so a resume restores every replicate at the newest position any of them reached.

Refused (``check_packable``): other study kinds, models other than the FCNs, tfmot's gradual pruning,
distribution strategies, mixed precision, XLA, per-epoch validation and early stopping.
"""
from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from keras_sdd import seeds
from keras_sdd.analysis import energy as analysis_energy
from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError
from keras_sdd.pruning import methods, tfmot_bridge
from keras_sdd.study import checkpoints, directory, paths
from keras_sdd.study.assemble import assemble, epochs_of_round, round_targets
from keras_sdd.study.board import EpochRecorder
from keras_sdd.study.records import RoundRecords, atomic_write_json, read_rounds
from keras_sdd.training.retrain import snapshot

__all__ = ["check_packable", "replicate_configs", "run_packed", "PackedLoop", "NOTE", "PACKABLE_MODELS"]

#: The note each replicate's directory carries.
NOTE = "packed.json"
#: Models whose replicates are packed: plain Dense stacks (no BatchNorm statistics, no dropout RNG to share).
PACKABLE_MODELS = ("fcn", "lenet300_100")
SHARED = ("the compiled train call (all replicates step together: same steps per epoch, epochs and "
          "steps_per_execution) and the evaluation call (every replicate's logits in one pass); each row's "
          "wall_time_s and energy are the packed round's divided by R")
NOT_SHARED = ("data bundle (label-noise draw, subset, validation split), initialisation, batch order "
              "(each replicate's own shuffle seed), optimizer state, learning-rate schedule, masks (global "
              "magnitude threshold per replicate), rewind weights, metrics")


def check_packable(c: StudyConfig) -> None:
    """One ConfigError naming what ``--replicates`` cannot pack (called by ``config.validate``)."""
    why = None
    if c.study != "sdd":
        why = f"--study={c.study} is not packed (only --study=sdd); run the replicates as separate studies"
    elif c.model not in PACKABLE_MODELS:
        why = (f"--model={c.model} is not packed: only the fully connected models ({', '.join(PACKABLE_MODELS)}) "
               "are (vgg_like, resnet18 and resnet_small carry BatchNorm statistics, vit dropout and attention; "
               "they run one replicate per study)")
    elif methods.is_gradual(c.prune_method):
        why = f"--prune_method={c.prune_method} prunes inside tfmot's own train step; packing needs a " \
              "between-round method (global_magnitude, layerwise_magnitude, random)"
    elif c.strategy != "default":
        why = f"--strategy={c.strategy} is not packed; packed replicates run on one device"
    elif c.mixed_precision != "none":
        why = f"--mixed_precision={c.mixed_precision} is not packed; use --mixed_precision=none"
    elif c.jit_compile:
        why = "--jit_compile is not packed (XLA cannot compile the in-graph shuffle of the packed call)"
    elif c.eval_every_epochs:
        why = "--eval_every_epochs is not packed (replicates are evaluated at the end of each round)"
    elif c.early_stop_patience:
        why = "--early_stop_patience is not packed (replicates would stop at different rounds)"
    elif c.input_pipeline == "tf_data":
        why = "--input_pipeline=tf_data is not packed; packed replicates build their batches in-graph"
    if why:
        raise ConfigError(f"--replicates={c.replicates}: {why}")


def member_dir(root: pathlib.Path, seed: int) -> pathlib.Path:
    return root / f"seed={seed}"


def replicate_configs(config: StudyConfig) -> List[StudyConfig]:
    """The R member studies: the config of a separate study with seed s+r in ``<logdir>/seed=<s+r>``."""
    root = pathlib.Path(config.logdir)
    out = []
    for r in range(config.replicates):
        s = config.seed + r
        d = member_dir(root, s)
        out.append(config.replace(seed=s, replicates=1, logdir=str(d), resume=paths.StudyPaths(d).is_study()))
    return out


# ------------------------------------------------------------------------------------------------------------
class PackedCheckpoints:
    """Saves all replicates' checkpoints as one: every replicate's files first, then every ``latest.json``.
    A kill in between leaves each replicate pointing at the new checkpoint or at the previous one, whose files
    are all intact (a replicate's previous epoch checkpoint is dropped only once its own pointer has moved,
    after every replicate's new files exist): ``resume_position`` picks the newest."""

    def __init__(self, ckpts: List[checkpoints.StudyCheckpoints]):
        self.ckpts = ckpts

    def _save(self, name: str, round_index: int, epoch: int) -> None:
        for c in self.ckpts:
            c.write_files(c.dir / name, round_index, epoch)
        for c in self.ckpts:
            c.point(c.dir / name, round_index, epoch)

    def save_latest(self, round_index: int, epoch: int) -> None:
        self._save(paths.StudyPaths("").epoch_checkpoint(round_index, epoch).name, round_index, epoch)

    def save_round(self, round_index: int, epochs: int) -> None:
        self._save(paths.StudyPaths("").round_checkpoint(round_index).name, round_index, epochs)


def resume_position(plans: List[directory.Plan]) -> Tuple[List[Optional[pathlib.Path]], Optional[Tuple[int, int]]]:
    """Each replicate's checkpoint to restore and the common (round, epoch): the newest position any replicate's
    plan reached (all replicates' files of it exist, see ``PackedCheckpoints``)."""
    placed = [(p.round, p.epoch, p.restore.name) for p in plans if p.restore is not None]
    if not placed:
        return [None] * len(plans), None
    k, e, name = max(placed)
    prefixes = []
    for p in plans:
        prefix = p.paths.checkpoints / name
        try:
            checkpoints.verify(prefix)
        except ConfigError as err:
            raise ConfigError(f"cannot resume the packed replicates: {p.root} lacks the checkpoint {name} that "
                              f"another replicate reached ({err})") from None
        prefixes.append(prefix)
    return prefixes, (k, e)


# ------------------------------------------------------------------------------------------------------------
class StackedStep:
    """The packed train call on kernels with a leading replicate axis: each Dense layer of the R students becomes
    one (R, in, out) kernel, one (R, in, out) mask and one (R, out) bias, so a step is one batched matmul per layer
    and one optimizer update per variable for all R (the per-replicate graph has R times the ops; small models are
    op-bound on a CPU). Used for the duration of a round's training: ``load()`` stacks the replicates' weights,
    masks and optimizer slots; ``store()`` writes them back (before every checkpoint, rewind capture and the
    round's end), where pruning, evaluation and checkpoints find them as in a separate study.

    Exactly the per-replicate step: the masks are applied to the stored kernels before the forward pass
    (``FixedMaskPruneLowMagnitude``), each replicate's loss is the mean cross-entropy of its own batch (plus its ℓ2
    penalty), and the stacked optimizer — the replicates' optimizer and schedule, on stacked variables — is
    elementwise, so its update of slice r is replicate r's (all replicates share step counts and learning
    rates: same config, same steps). ``StackedStep.build`` returns None where this does not hold."""

    def __init__(self, loops, layers, optimizer, batches, config: StudyConfig):
        self.loops, self.layers, self.optimizer, self.config = loops, layers, optimizer, config
        self.R = len(loops)
        # per layer: (kernel vars, bias vars, mask vars or None, activation) over replicates -> stacked variables
        self.kernels = [tf.Variable(tf.stack([k.numpy() for k in ks]), name=f"packed_kernel_{i}")
                        for i, (ks, _, _, _) in enumerate(layers)]
        self.biases = [tf.Variable(tf.stack([b.numpy() for b in bs]), name=f"packed_bias_{i}")
                       for i, (_, bs, _, _) in enumerate(layers)]
        self.masks = [None if ms is None else tf.Variable(tf.stack([m.numpy() for m in ms]), trainable=False,
                                                          name=f"packed_mask_{i}")
                      for i, (_, _, ms, _) in enumerate(layers)]
        order = {id(v): i for i, v in enumerate(loops[0].a.student.trainable_variables)}
        stacked = {}
        for i, (ks, bs, _, _) in enumerate(layers):
            stacked[order[id(ks[0])]], stacked[order[id(bs[0])]] = self.kernels[i], self.biases[i]
        self.variables = [stacked[j] for j in range(len(order))]   # the students' own variable order
        optimizer.build(self.variables)
        self.loss_sum = tf.Variable(tf.zeros(self.R), trainable=False)
        self.correct = tf.Variable(tf.zeros(self.R), trainable=False)
        self.seen = tf.Variable(0.0, trainable=False)
        l2 = float(config.l2)

        gather = self._stacked_gather([loop.a.bundle for loop in loops], int(config.batch_size))

        def step(plans, index):
            if gather is not None:   # one gather for all replicates
                x, y = gather(plans, index)
            else:
                data = [b.batch(p, index) for b, p in zip(batches, plans)]
                x = tf.stack([tf.reshape(xb, (tf.shape(xb)[0], -1)) for xb, _ in data])   # (R, B, features)
                y = tf.stack([tf.cast(yb, tf.int32) for _, yb in data])                   # (R, B)
            for kernel, mask in zip(self.kernels, self.masks):
                if mask is not None:
                    kernel.assign(kernel * mask)
            with tf.GradientTape() as tape:
                h = x
                for kernel, bias, (_, _, _, activation) in zip(self.kernels, self.biases, layers):
                    h = activation(tf.matmul(h, kernel) + bias[:, None, :])
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h)
                losses = tf.reduce_mean(ce, axis=1)                                     # (R,)
                if l2:
                    losses = losses + 0.5 * l2 * tf.add_n([tf.reduce_sum(tf.square(k), axis=[1, 2])
                                                           for k in self.kernels])
                total = tf.reduce_sum(losses)
            grads = tape.gradient(total, self.variables)
            optimizer.apply_gradients(zip(grads, self.variables))
            batch = tf.cast(tf.shape(y)[1], tf.float32)
            self.loss_sum.assign_add(losses * batch)
            self.correct.assign_add(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(h, axis=-1, output_type=tf.int32), y),
                                                          tf.float32), axis=1))
            self.seen.assign_add(batch)

        def call(stream_seeds, epoch, start, length):
            plans = [b.plan({"seed": stream_seeds[r], "epoch": epoch}) for r, b in enumerate(batches)]
            for i in tf.range(length):
                step(plans, start + i)

        self.call = tf.function(call)

    @staticmethod
    def _stacked_gather(bundles, batch_size: int):
        """``(plans, step) -> (x (R, B, features) float32, y (R, B) int32)``: every replicate's batch ``step``
        (as ``DataBundle.in_graph_batches`` makes it) in one gather from the stacked training sets; None where
        the bundles augment or normalise differently (then each replicate gathers its own)."""
        if any(b.augment != "none" for b in bundles) or len({b.images for b in bundles}) != 1 or len(
                {b.mean is None for b in bundles}) != 1:
            return None
        n, b = len(bundles[0].train), batch_size
        with tf.device("/CPU:0"):
            xs = tf.constant(np.stack([bd.train.x.reshape(n, -1) for bd in bundles]))
            ys = tf.constant(np.stack([bd.train.y for bd in bundles]).astype(np.int32))
        images = bundles[0].images
        mean = std = None
        if bundles[0].mean is not None:
            feat = xs.shape[-1]
            shape = bundles[0].train.x.shape[1:]
            mean = tf.constant(np.stack([np.broadcast_to(bd.mean, shape).reshape(feat) for bd in bundles])[:, None])
            std = tf.constant(np.stack([np.broadcast_to(1.0 / bd.std, shape).reshape(feat)
                                        for bd in bundles])[:, None].astype(np.float32))

        def gather(plans, step):
            step = tf.cast(step, tf.int64)
            lo, hi = step * b, tf.minimum((step + 1) * b, n)
            idx = tf.stack([p["idx"][lo:hi] for p in plans])
            x = tf.cast(tf.gather(xs, idx, batch_dims=1), tf.float32)
            if images:
                x = x * (1.0 / 255.0)
            if mean is not None:
                x = (x - mean) * std
            return x, tf.gather(ys, idx, batch_dims=1)
        return gather

    @staticmethod
    def build(loops, batches, config: StudyConfig) -> Optional["StackedStep"]:
        """The stacked step of these replicates, or None where their students are not plain Dense stacks with
        identically structured optimizers."""
        from keras_sdd.models.params import unwrap, walk_layers
        from keras_sdd.training import policy

        per_replicate = []
        for loop in loops:
            layers = []
            for _, layer in walk_layers(loop.a.student):
                inner = unwrap(layer)
                if isinstance(inner, tf_keras.layers.Dense):
                    if not inner.use_bias:
                        return None
                    mask = None
                    if isinstance(layer, tfmot_bridge.PruneLowMagnitude):
                        pruned = [m for w, m, _ in layer.pruning_vars if w is inner.kernel]
                        if len(pruned) != 1 or len(layer.pruning_vars) != 1:
                            return None
                        mask = pruned[0]
                    layers.append((inner.kernel, inner.bias, mask, inner.activation))
                elif inner.weights or not isinstance(inner, (tf_keras.layers.Flatten, tf_keras.layers.InputLayer)):
                    return None
            if len(loop.a.student.trainable_variables) != 2 * len(layers):
                return None
            per_replicate.append(layers)
        if any(len(p) != len(per_replicate[0]) for p in per_replicate):
            return None
        layers = []
        for i in range(len(per_replicate[0])):
            ks, bs, ms, acts = zip(*(p[i] for p in per_replicate))
            if any(m is None for m in ms) and any(m is not None for m in ms):
                return None
            layers.append((list(ks), list(bs), None if ms[0] is None else list(ms), acts[0]))
        optimizer = policy.make_optimizer(config, loops[0].a.schedule)
        stepper = StackedStep(loops, layers, optimizer, batches, config)
        shapes_ok = len(optimizer.variables) == len(loops[0].a.optimizer.variables) and all(
            tuple(sv.shape) in (tuple(v.shape), (len(loops),) + tuple(v.shape))
            for sv, v in zip(optimizer.variables, loops[0].a.optimizer.variables))
        return stepper if shapes_ok else None

    def _slots(self):
        """(stacked optimizer variable, [replicate r's], stacked?) in the optimizers' own variable order."""
        per = [loop.a.optimizer.variables for loop in self.loops]
        return [(sv, [p[j] for p in per], tuple(sv.shape) != tuple(per[0][j].shape))
                for j, sv in enumerate(self.optimizer.variables)]

    def load(self) -> None:
        for i, (ks, bs, ms, _) in enumerate(self.layers):
            self.kernels[i].assign(tf.stack(ks))
            self.biases[i].assign(tf.stack(bs))
            if ms is not None:
                self.masks[i].assign(tf.stack(ms))
        for sv, vs, stacked in self._slots():
            sv.assign(tf.stack(vs) if stacked else vs[0])

    def store(self) -> None:
        for i, (ks, bs, ms, _) in enumerate(self.layers):
            for r in range(self.R):
                ks[r].assign(self.kernels[i][r])
                bs[r].assign(self.biases[i][r])
        for sv, vs, stacked in self._slots():
            for r, v in enumerate(vs):
                v.assign(sv[r] if stacked else sv)

    def reset_metrics(self) -> None:
        for v in (self.loss_sum, self.correct):
            v.assign(tf.zeros(self.R))
        self.seen.assign(0.0)

    def logs(self, r: int) -> Dict[str, float]:
        n = float(self.seen.numpy()) or 1.0
        return {"loss": float(self.loss_sum[r].numpy()) / n, "accuracy": float(self.correct[r].numpy()) / n}


# ------------------------------------------------------------------------------------------------------------
class PackedLogits:
    """All replicates' logits on a split in one compiled call (each replicate on its own split's inputs, same
    batches and ops as ``evaluate.SplitLogits``), made once per round and handed out per replicate:
    ``for_replicate(r)`` stands in for that replicate's ``SplitLogits``. ``clear()`` after the weights change."""

    def __init__(self, students, bundles, batch_size: int):
        self.bundles, b = bundles, int(batch_size)
        self._cache: Dict[str, List[np.ndarray]] = {}

        def logits(xs):
            n = tf.shape(xs[0], out_type=tf.int64)[0]
            steps = (n + b - 1) // b
            outs = [tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32), infer_shape=False) for _ in xs]
            for i in tf.range(steps):
                lo, hi = i * b, tf.minimum((i + 1) * b, n)
                outs = [out.write(tf.cast(i, tf.int32),
                                  tf.cast(student(bundle.normalize(x[lo:hi]), training=False), tf.float32))
                        for out, student, bundle, x in zip(outs, students, bundles, xs)]
            return [out.concat() for out in outs]
        self._logits = tf.function(logits, reduce_retracing=True)

    def clear(self) -> None:
        self._cache.clear()

    def get(self, r: int, split: str) -> np.ndarray:
        if split not in self._cache:
            self._cache[split] = [t.numpy() for t in self._logits([b.raw_inputs(split) for b in self.bundles])]
        return self._cache[split][r]

    def for_replicate(self, r: int):
        return lambda split: self.get(r, split)

    @staticmethod
    def applies(bundles) -> bool:
        """One pass needs every replicate's splits of equal, non-zero sizes (the loop runs over one count)."""
        for split in ("train", "val", "test"):
            sizes = {0 if getattr(b, split) is None else len(getattr(b, split)) for b in bundles}
            if len(sizes) != 1 or (0 in sizes and split != "val"):
                return False
        return True


# ------------------------------------------------------------------------------------------------------------
class PackedLoop:
    """Drives R ``RoundLoop``s (one per replicate: pruning, evaluation, records, checkpoints) in lockstep,
    training them with one compiled call."""

    def __init__(self, loops, plans: List[directory.Plan], stacked: bool = True):
        self.loops, self.plans = loops, plans
        self.R = len(loops)
        self.config: StudyConfig = loops[0].config
        c = self.config
        for loop in loops:
            loop.meter = None   # one meter for the packed round, shared out below
        self.meter = analysis_energy.EnergyMeter(c.co2_country) if c.track_energy else None
        self.ckpts = PackedCheckpoints([loop.ckpts for loop in loops])
        sizes = {loop.a.steps_per_epoch for loop in loops}
        if len(sizes) != 1:
            raise ConfigError(f"--replicates: the replicates' training sets give different steps per epoch "
                              f"({sorted(sizes)}); they cannot step together")
        self.steps_per_epoch = sizes.pop()
        self._call = self._make_call()
        self.stacked = StackedStep.build(loops, self._batches, c) if stacked else None
        logging.info("packed step: %s", "kernels stacked on a replicate axis" if self.stacked is not None
                     else "one branch per replicate")
        bundles = [loop.a.bundle for loop in loops]
        self.logits = None
        if PackedLogits.applies(bundles):   # else each replicate keeps its own SplitLogits
            self.logits = PackedLogits([loop.a.student for loop in loops], bundles, max(c.batch_size, 256))
            for r, loop in enumerate(loops):
                loop.logits = self.logits.for_replicate(r)

    # ----------------------------------------------------------------------------------------------------
    def _make_call(self):
        c = self.config
        students = [loop.a.student for loop in self.loops]
        optimizers = [loop.a.optimizer for loop in self.loops]
        batches = self._batches = [loop.a.bundle.in_graph_batches(c.batch_size) for loop in self.loops]
        ce = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_metrics = [tf_keras.metrics.Mean(name=f"loss_{r}") for r in range(self.R)]
        self.acc_metrics = [tf_keras.metrics.SparseCategoricalAccuracy(name=f"accuracy_{r}") for r in range(self.R)]

        def step(plans, index):
            data = [b.batch(p, index) for b, p in zip(batches, plans)]
            with tf.GradientTape() as tape:
                losses, outputs = [], []
                for student, (x, y) in zip(students, data):
                    logits = student(x, training=True)
                    loss = ce(y, logits)
                    if student.losses:   # the ℓ2 penalty (add_l2_penalty), as compile's loss adds it
                        loss = loss + tf.add_n(student.losses)
                    losses.append(loss)
                    outputs.append(logits)
                total = tf.add_n(losses)
            variables = [s.trainable_variables for s in students]
            grads = tape.gradient(total, [v for vs in variables for v in vs])
            i = 0
            for opt, vs in zip(optimizers, variables):
                opt.apply_gradients(zip(grads[i:i + len(vs)], vs))
                i += len(vs)
            for r, ((_, y), logits) in enumerate(zip(data, outputs)):
                self.loss_metrics[r].update_state(losses[r], sample_weight=tf.shape(y)[0])
                self.acc_metrics[r].update_state(y, logits)


        def call(stream_seeds, epoch, start, length):
            plans = [b.plan({"seed": stream_seeds[r], "epoch": epoch}) for r, b in enumerate(batches)]
            for i in tf.range(length):
                step(plans, start + i)

        return tf.function(call)

    def _train(self, k: int, start_epoch: int, epochs: int) -> Optional[List[EpochRecorder]]:
        """Trains round k of every replicate from ``start_epoch``; returns the recorders still to flush."""
        c = self.config
        if start_epoch >= epochs:
            return None
        recorders = [loop.board.epoch_recorder(k, loop.a.schedule) for loop in self.loops]
        stream_seeds = tf.constant([seeds.derive(loop.config.seed, "shuffle", k) for loop in self.loops], tf.int64)
        spe, steps = c.steps_per_execution, self.steps_per_epoch
        capture = k == 0 and c.retrain == "weight_rewind" and c.rewind_step > 0 and any(
            not loop.paths.rewind.exists() for loop in self.loops)
        last = time.monotonic()
        st = self.stacked
        if st is not None:
            st.load()
        call = self._call if st is None else st.call
        for epoch in range(start_epoch, epochs):
            if st is None:
                for m in self.loss_metrics + self.acc_metrics:
                    m.reset_state()
            else:
                st.reset_metrics()
            for start in range(0, steps, spe):
                call(stream_seeds, tf.constant(epoch, tf.int64), tf.constant(start, tf.int64),
                     tf.constant(min(spe, steps - start), tf.int64))
                if capture and epoch * steps + start + min(spe, steps - start) >= c.rewind_step:
                    if st is not None:
                        st.store()
                    self._capture_rewind()
                    capture = False
            for r, (loop, rec) in enumerate(zip(self.loops, recorders)):
                if st is None:
                    logs = {"loss": self.loss_metrics[r].result(), "accuracy": self.acc_metrics[r].result()}
                    rec.add(epoch, logs, loop.a.optimizer.iterations)
                else:
                    rec.add(epoch, st.logs(r), st.optimizer.iterations)
            if epoch + 1 < epochs and time.monotonic() - last >= c.checkpoint_every_secs:
                if st is not None:
                    st.store()
                self.ckpts.save_latest(k, epoch + 1)
                for rec in recorders:
                    rec.flush()
                last = time.monotonic()
        if st is not None:
            st.store()
        return recorders

    def _capture_rewind(self) -> None:
        """The weights after step ``--rewind_step`` of the dense run, for every replicate (before any later
        checkpoint, so a resume past this step always finds them)."""
        from keras_sdd.study.runner import _save_snapshot

        for loop in self.loops:
            snap = snapshot(loop.a.student)
            _save_snapshot(loop.paths.rewind, snap)
            loop.retrainer.rewind = snap

    # ----------------------------------------------------------------------------------------------------
    def run(self) -> List[Dict[str, Any]]:
        c, loops = self.config, self.loops
        t_start = time.monotonic()
        records = [RoundRecords(p.root) for p in self.plans]
        done = [{int(r["round"]) for r in p.rows} for p in self.plans]
        previous = [p.rows[-1] if p.rows else None for p in self.plans]
        prefixes, latest = resume_position(self.plans)
        for loop, prefix in zip(loops, prefixes):
            if prefix is not None:
                loop.ckpts.restore(prefix)
        if latest is not None:
            logging.info("resuming %d packed replicates from round %d, epoch %d", self.R, *latest)
        for loop in loops:
            loop._prepare_rewind()   # pylint: disable=protected-access
            loop.board.log_start(loop.config.to_dict())
        targets = round_targets(c)
        total = len(targets) - 1
        logging.info("%d packed replicates of %s on %s (seeds %s), %d prunable parameters each, %d pruning rounds "
                     "to %.2f%% sparsity", self.R, c.model, c.dataset, ", ".join(str(lp.config.seed) for lp in loops),
                     loops[0].a.params.prunable, total, 100 * targets[-1])
        new_rows = [0] * self.R
        if self.meter is not None:
            self.meter.start()
        for k, target in enumerate(targets):
            todo = [r for r in range(self.R) if k not in done[r]]
            if not todo:
                continue
            t0 = time.monotonic()
            if self.meter is not None:
                self.meter.begin(f"round_{k:03d}")
            epochs = epochs_of_round(c, k)
            start_epoch = 0
            if latest is not None and latest[0] == k:
                start_epoch = latest[1]
                for loop in loops:
                    loop.retrainer.set_learning_rate(k)
            else:
                for loop in loops:
                    if k > 0:
                        report = tfmot_bridge.prune(loop.a.student, target, c.prune_method,
                                                    seed=seeds.derive(loop.config.seed, "masks", k))
                        if report.collapsed:
                            logging.warning("seed %d round %d: layer collapse — pruned to 100%%: %s",
                                            loop.config.seed, k, ", ".join(report.collapsed))
                    loop.retrainer.before_round(loop.a.student, k)
            recorders = self._train(k, start_epoch, epochs)
            if recorders is not None:
                for loop in loops:
                    tfmot_bridge.apply_masks(loop.a.student)
                self.ckpts.save_round(k, epochs)
                for rec in recorders:
                    rec.flush()
            latest = (k, epochs)
            wall = (time.monotonic() - t0) / self.R
            reading = self.meter.end() if self.meter is not None else None
            accs = []
            if self.logits is not None:
                self.logits.clear()
            for r in todo:
                loop = loops[r]
                row = loop._evaluate(k, target, epochs, wall)   # pylint: disable=protected-access
                row.update(energy_kwh=reading.energy_kwh / self.R if reading else float("nan"),
                           co2_g=reading.co2_g / self.R if reading else float("nan"),
                           co2_method=(f"{reading.method}; packed round ÷ {self.R}" if reading
                                       else "off (--notrack_energy)"))
                loop._accumulate(row, previous[r])   # pylint: disable=protected-access
                previous[r] = row
                for hook in loop.row_hooks:
                    hook(k, row)
                records[r].append(row)
                loop.publish(k, row)
                new_rows[r] += 1
                accs.append(100 * row["test_accuracy"])
            logging.info("round %d/%d  sparsity %6.2f%%  test acc %s  (%d packed replicates)", k, total,
                         100 * target, " ".join(f"{a:5.1f}%" for a in accs), len(todo))
        if self.meter is not None:
            self.meter.stop()
        wall = time.monotonic() - t_start
        summaries = []
        for r, (loop, plan) in enumerate(zip(loops, self.plans)):
            rows = read_rounds(plan.root)
            loop.finish_curve(rows, bool(new_rows[r]),
                              f"{c.model} on {c.dataset}, seed {loop.config.seed} (packed ×{self.R})")
            summary = loop.summary(rows, wall / self.R)
            atomic_write_json(loop.paths.summary, summary)
            summaries.append(summary)
        return summaries


# ------------------------------------------------------------------------------------------------------------
def _check_root(config: StudyConfig) -> None:
    root = pathlib.Path(config.logdir)
    p = paths.StudyPaths(root)
    directory.check_location(root)
    if p.is_study():
        if not config.resume:
            raise ConfigError(f"{root} already holds packed replicates; pass --resume to continue them, or choose "
                              "another --logdir")
        directory.compare(directory.read_config(root), config, root)
    elif config.resume:
        raise ConfigError(f"--resume: there are no packed replicates in {root} to resume; drop --resume to start")
    elif root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not an empty folder; choose another --logdir")


def run_packed(config: StudyConfig, record_files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Plans every replicate (nothing written), assembles them (data and models known good), then writes
    ``<logdir>/config.json`` and ``group.json``, each replicate's directory and note, and runs the packed loop.
    Returns the group summary (also written to ``<logdir>/summary.json``)."""
    from keras_sdd.study.runner import RoundLoop, _finished

    root = pathlib.Path(config.logdir)
    _check_root(config)
    members = replicate_configs(config)
    plans = [directory.plan(m) for m in members]
    if not all(p.resumed and _finished(p, m) for p, m in zip(plans, members)):
        assemblies = [assemble(m) for m in members]
        root.mkdir(parents=True, exist_ok=True)
        p = paths.StudyPaths(root)
        if not p.is_study():
            atomic_write_json(p.config, config.to_dict())
            if record_files and paths.FLAGS in record_files:
                p.flags.write_text(record_files[paths.FLAGS])
        atomic_write_json(p.group, {"kind": "replicates", "members": {str(m.seed): pathlib.Path(m.logdir).name
                                                                      for m in members}})
        note = {"packed": True, "replicates": config.replicates, "seeds": [m.seed for m in members],
                "group": str(root), "shared": SHARED, "not_shared": NOT_SHARED}
        for plan, member in zip(plans, members):
            directory.create(plan, member, record_files)
            if not (plan.root / NOTE).exists():
                atomic_write_json(plan.root / NOTE, note)
        PackedLoop([RoundLoop(a, plan) for a, plan in zip(assemblies, plans)], plans).run()
    else:
        logging.info("%s: all %d replicates are complete; nothing to do", root, len(members))
    summaries = [json.loads(paths.StudyPaths(m.logdir).summary.read_text()) for m in members]
    dense = np.array([np.nan if s["dense_test_accuracy"] is None else s["dense_test_accuracy"] for s in summaries])
    summary = {"study": "replicates", "config": config.to_dict(), "packed": True,
               "members": {str(m.seed): {"logdir": m.logdir, "complete": s["complete"],
                                         "rounds_done": s["rounds_done"],
                                         "dense_test_accuracy": s["dense_test_accuracy"],
                                         "best_val_round": s["best_val_round"],
                                         "best_val_round_test_accuracy": s["best_val_round_test_accuracy"]}
                           for m, s in zip(members, summaries)},
               "dense_test_accuracy_mean": float(np.nanmean(dense)) if np.isfinite(dense).any() else None,
               "complete": all(s["complete"] for s in summaries),
               "rounds_done": sum(s["rounds_done"] for s in summaries),
               "rounds_planned": len(round_targets(config)) * len(members)}
    atomic_write_json(paths.StudyPaths(root).summary, summary)
    return summary
