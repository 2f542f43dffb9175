"""StudyConfig: every setting of a study in one frozen, JSON-able dataclass, and the one place it is validated.

The absl app turns flags into a StudyConfig; the study runner reads only the config (never flags), and writes
it into the study directory as ``config.json`` so that a study records exactly how it was made.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Dict, Optional, Tuple

from keras_sdd.errors import ConfigError

#: The study kinds (``keras_sdd.study.kinds`` registers each; listed here so flags need no TensorFlow import).
STUDIES = ("sdd", "kd", "l2")
RETRAIN_MODES = ("lr_rewind", "finetune", "weight_rewind", "scratch")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("multistep", "cosine", "constant")
NOISE_TYPES = ("none", "symmetric", "uniform", "pairflip")  # keras_sdd.data.label_noise
AUGMENTS = ("none", "standard", "randaugment")
MIXED_PRECISION = ("none", "bfloat16", "float16")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
INPUT_PIPELINES = ("auto", "in_graph", "tf_data")
GMM_TASKS = ("linear", "xor")
KERAS_LINES = ("2", "3")                # 2: tf_keras + tfmot (default); 3: the Keras 3 path (keras_sdd.keras3)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """All settings of one study. Defaults follow the seed papers' CIFAR setup where one applies."""

    study: str = "sdd"                      # sdd | kd (distillation in every round) | l2 (one study per λ)
    # --- data -----------------------------------------------------------------------------------------
    dataset: str = "gaussian_mixture"
    data_dir: Optional[str] = None          # tfds data_dir (None: tfds default / TFDS_DATA_DIR)
    download: bool = False                  # let tfds download (needs internet)
    data_path: Optional[str] = None         # npz file, image folder, or folder of CIFAR-N label files
    classes: Tuple[str, ...] = ()           # keep only these classes (names or ids), relabelled 0..K-1
    train_subset: int = 0                   # 0 = the whole training set
    val_fraction: float = 0.1               # held out of the (noisy) training set, for model selection
    noise_type: str = "symmetric"
    noise_rate: float = 0.2
    human_label: Optional[str] = None       # cifar10_n: aggre|worse|random1..3; cifar100_n: noisy
    augment: str = "none"
    gmm_task: str = "linear"
    gmm_dim: int = 100
    gmm_bayes_accuracy: float = 0.9
    gmm_nu: float = 0.0                     # >0: cluster distance ν set directly (gmm_bayes_accuracy then unused)
    gmm_train_size: int = 10000
    gmm_test_size: int = 5000
    # --- model ----------------------------------------------------------------------------------------
    model: str = "fcn"
    width: Optional[float] = None           # model-specific width setting (see keras_sdd.models)
    depth: Optional[int] = None
    hidden: Tuple[int, ...] = ()            # FCN hidden widths, e.g. (300, 100)
    vit_patch_size: int = 4
    vit_heads: int = 8
    vit_mlp_dim: int = 512
    dropout: float = 0.1                    # ViT only
    # --- pruning --------------------------------------------------------------------------------------
    prune_method: str = "global_magnitude"
    prune_fraction: float = 0.2             # ζ_iter: share of the remaining weights removed per round
    final_sparsity: float = 0.998           # ζ_end
    max_rounds: int = 0                     # 0 = until final_sparsity
    keep_output_dense: bool = False
    prune_only_dense: bool = False
    prune_frequency: int = 100              # tfmot gradual methods: steps between mask updates
    # --- retraining between rounds -----------------------------------------------------------------------
    retrain: str = "lr_rewind"
    rewind_step: int = 0                    # weight_rewind: the dense run's step k whose weights are restored
    finetune_lr: float = 1e-3
    finetune_epochs: int = 0                # 0 = epochs
    # --- training policy --------------------------------------------------------------------------------
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0               # AdamW's decoupled decay
    l2: float = 0.0                         # λ: penalty λ/2·Σ‖kernel‖² (equals SGD weight decay λ)
    lr_schedule: str = "multistep"
    milestones: Tuple[int, ...] = (80, 120)  # epochs
    lr_gamma: float = 0.1
    epochs: int = 160
    batch_size: int = 128
    seed: int = 0
    # --- distillation (--study=kd) ------------------------------------------------------------------------
    teacher: Optional[str] = None           # DIR (its dense round), DIR:best, DIR:round=K, or a saved model file
    teacher_flagfile: Optional[str] = None  # run this teacher study in the teacher DIR first if it is not finished
    kd_alpha: float = 0.8                   # α: weight of the distillation term
    kd_temperature: float = 10.0            # τ
    # --- ℓ2 study (--study=l2) ----------------------------------------------------------------------------
    l2_values: Tuple[float, ...] = ()       # one SDD study per λ, in <logdir>/l2=<λ>
    # --- what each round records ----------------------------------------------------------------------------
    ece_bins: int = 15                      # equal-width confidence bins of the ECE
    co2_country: str = "USA"                # ISO code of the grid's carbon intensity (codecarbon, offline)
    track_energy: bool = True               # energy and CO2 per round through codecarbon
    save_predictions: bool = True           # test predictions of every round (calibration figures)
    early_stop_patience: int = 0            # >0: end the pruning when validation accuracy falls (see analysis)
    early_stop_tolerance: float = 0.0       # how far below the best validation accuracy counts as a fall
    # --- running ----------------------------------------------------------------------------------------
    logdir: str = "runs/sdd"
    resume: bool = False
    steps_per_execution: int = 1
    checkpoint_every_secs: float = 30.0
    eval_every_epochs: int = 0              # 0 = evaluate at the end of each round only
    deterministic: bool = False             # tf op determinism (slower on GPU)
    threads: int = 0                        # TF intra/inter-op threads (0: TF's default); 1 suits tiny models
    resume_from_round: int = -1             # with --resume: restart after this recorded round (damaged latest)
    mixed_precision: str = "none"           # none | bfloat16 | float16 (float32 variables, logits and loss)
    jit_compile: bool = False               # XLA-compile the train step
    strategy: str = "default"               # tf.distribute: default | mirrored | multi_worker | tpu
    input_pipeline: str = "auto"            # auto | in_graph | tf_data: where training batches are made
    keras: str = "2"                        # 2: tf_keras + tfmot; 3: Keras 3 (keras_sdd.keras3.study; sdd on FCNs)
    replicates: int = 1                     # >1: seeds seed..seed+R-1 trained packed in one model (study.packed)

    # ------------------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "StudyConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown study settings: {', '.join(unknown)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fixed)

    def replace(self, **changes) -> "StudyConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------------
    @property
    def round_epochs(self) -> int:
        """Epochs of each pruning round's retraining."""
        if self.retrain == "finetune" and self.finetune_epochs:
            return self.finetune_epochs
        return self.epochs

    def data_options(self) -> Dict[str, Any]:
        """Keyword arguments for ``keras_sdd.data.load``."""
        opts: Dict[str, Any] = dict(
            seed=self.seed, noise_type=self.noise_type, noise_rate=self.noise_rate,
            val_fraction=self.val_fraction, classes=list(self.classes) or None,
            train_subset=self.train_subset or None, data_dir=self.data_dir, download=self.download,
            human_label=self.human_label, path=self.data_path, augment=self.augment)
        if self.dataset == "gaussian_mixture":
            opts.update(task=self.gmm_task, dim=self.gmm_dim, train_size=self.gmm_train_size,
                        test_size=self.gmm_test_size)
            if self.gmm_nu > 0:
                opts.update(nu=self.gmm_nu)
            else:
                opts.update(bayes_accuracy=self.gmm_bayes_accuracy)
        return opts

    def model_options(self) -> Dict[str, Any]:
        """Keyword arguments for ``keras_sdd.models.build`` (besides input shape and classes)."""
        width = self.width
        if width is not None and float(width).is_integer():
            width = int(width)  # FCN units, VGG γ and ViT dim are counts; a ResNet multiplier may be 0.5
        opts: Dict[str, Any] = dict(width=width, depth=self.depth, hidden=list(self.hidden) or None,
                                    seed=self.seed)
        if self.model == "vit":
            opts.update(patch_size=self.vit_patch_size, heads=self.vit_heads, mlp_dim=self.vit_mlp_dim,
                        dropout=self.dropout)
        return opts


#: Settings that may differ between a study and its resumption (they change how it runs, not what it computes).
RESUMABLE_CHANGES = ("resume", "logdir", "checkpoint_every_secs", "eval_every_epochs", "threads",
                     "resume_from_round", "teacher_flagfile", "input_pipeline")


def _choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"--{name}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> None:
    ok = True
    if lo is not None:
        ok &= value > lo if lo_open else value >= lo
    if hi is not None:
        ok &= value < hi if hi_open else value <= hi
    if not ok or (isinstance(value, float) and math.isnan(value)):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ConfigError(f"--{name}={value} is out of range; it must lie in {lb}{lo if lo is not None else '-inf'}, "
                          f"{hi if hi is not None else 'inf'}{rb}")


def validate(config: StudyConfig) -> StudyConfig:
    """Refuses bad settings with one ConfigError naming the valid choices or the fix; cheap, before any work.

    Checks each setting's own range, the registries (dataset, model, pruning method) and the settings that
    only make sense together. Returns the config unchanged so that calls can be chained.
    """
    from keras_sdd import data, models  # local: the registries fill on import
    from keras_sdd.pruning import methods

    c = config
    _choice("study", c.study, STUDIES)
    _choice("retrain", c.retrain, RETRAIN_MODES)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("lr_schedule", c.lr_schedule, LR_SCHEDULES)
    _choice("noise_type", c.noise_type, NOISE_TYPES)
    _choice("augment", c.augment, AUGMENTS)
    _choice("gmm_task", c.gmm_task, GMM_TASKS)
    _choice("mixed_precision", c.mixed_precision, MIXED_PRECISION)
    _choice("strategy", c.strategy, STRATEGIES)
    _choice("input_pipeline", c.input_pipeline, INPUT_PIPELINES)
    if c.input_pipeline == "in_graph" and c.strategy != "default":
        raise ConfigError(f"--input_pipeline=in_graph feeds one device; with --strategy={c.strategy} use "
                          "--input_pipeline=tf_data (or auto)")
    methods.PRUNING_METHODS.check(c.prune_method)
    _range("noise_rate", c.noise_rate, 0.0, 1.0, hi_open=True)
    _range("val_fraction", c.val_fraction, 0.0, 1.0, hi_open=True)
    _range("train_subset", c.train_subset, 0)
    _range("prune_fraction", c.prune_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    _range("final_sparsity", c.final_sparsity, 0.0, 1.0, lo_open=True, hi_open=True)
    _range("max_rounds", c.max_rounds, 0)
    _range("prune_frequency", c.prune_frequency, 1)
    _range("rewind_step", c.rewind_step, 0)
    _range("finetune_lr", c.finetune_lr, 0.0, lo_open=True)
    _range("finetune_epochs", c.finetune_epochs, 0)
    _range("learning_rate", c.learning_rate, 0.0, lo_open=True)
    _range("momentum", c.momentum, 0.0, 1.0, hi_open=True)
    _range("weight_decay", c.weight_decay, 0.0)
    _range("l2", c.l2, 0.0)
    _range("lr_gamma", c.lr_gamma, 0.0, 1.0, lo_open=True)
    _range("epochs", c.epochs, 1)
    _range("batch_size", c.batch_size, 1)
    _range("seed", c.seed, 0)
    _range("steps_per_execution", c.steps_per_execution, 1)
    _range("checkpoint_every_secs", c.checkpoint_every_secs, 0.0)
    _range("eval_every_epochs", c.eval_every_epochs, 0)
    _range("threads", c.threads, 0)
    _range("dropout", c.dropout, 0.0, 1.0, hi_open=True)
    _range("gmm_dim", c.gmm_dim, 2)
    _range("gmm_bayes_accuracy", c.gmm_bayes_accuracy, 0.5, 1.0, lo_open=True, hi_open=True)
    _range("gmm_nu", c.gmm_nu, 0.0)
    _range("gmm_train_size", c.gmm_train_size, 2)
    _range("gmm_test_size", c.gmm_test_size, 1)
    _range("kd_alpha", c.kd_alpha, 0.0, 1.0)
    _range("kd_temperature", c.kd_temperature, 0.0, lo_open=True)
    _range("ece_bins", c.ece_bins, 1)
    _range("early_stop_patience", c.early_stop_patience, 0)
    _range("early_stop_tolerance", c.early_stop_tolerance, 0.0, 1.0)
    _range("resume_from_round", c.resume_from_round, -1)
    if c.resume_from_round >= 0 and not c.resume:
        raise ConfigError("--resume_from_round applies to --resume only")
    if c.study == "kd" and not c.teacher:
        raise ConfigError("--study=kd needs --teacher (a study directory, DIR:best, DIR:round=K or a saved model)")
    if c.study != "kd" and (c.teacher or c.teacher_flagfile):
        raise ConfigError("--teacher and --teacher_flagfile apply to --study=kd only")
    if c.study == "l2":
        if not c.l2_values:
            raise ConfigError("--study=l2 needs --l2_values, e.g. --l2_values=1e-4,0.03,1,3")
        for lam in c.l2_values:
            if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
                raise ConfigError(f"--l2_values: every λ must be a number >= 0, got {lam!r}")
        if len(set(c.l2_values)) != len(c.l2_values):
            raise ConfigError(f"--l2_values={','.join(map(str, c.l2_values))} repeats a value")
    elif c.l2_values:
        raise ConfigError("--l2_values applies to --study=l2 only (use --l2 for one study)")
    if not (isinstance(c.co2_country, str) and len(c.co2_country) == 3 and c.co2_country.isalpha()):
        raise ConfigError(f"--co2_country={c.co2_country!r} must be a 3-letter ISO country code, e.g. USA, FRA")
    if not c.logdir:
        raise ConfigError("--logdir must name the study directory")
    if list(c.milestones) != sorted(set(c.milestones)) or any(m <= 0 for m in c.milestones):
        raise ConfigError(f"--milestones={','.join(map(str, c.milestones))} must be increasing positive epochs")
    if c.lr_schedule == "multistep" and c.milestones and c.milestones[-1] >= c.epochs:
        raise ConfigError(f"--milestones={','.join(map(str, c.milestones))} must all be below --epochs={c.epochs}")
    if c.optimizer != "adamw" and c.weight_decay:
        raise ConfigError("--weight_decay is AdamW's decoupled decay; use --l2 for an ℓ2 penalty with "
                          f"--optimizer={c.optimizer}")
    if c.retrain != "weight_rewind" and c.rewind_step:
        raise ConfigError("--rewind_step only applies to --retrain=weight_rewind")
    if c.mixed_precision != "none" and methods.is_gradual(c.prune_method):
        raise ConfigError(f"--mixed_precision={c.mixed_precision} works with between-round pruning methods; "
                          f"tfmot's own wrapper behind --prune_method={c.prune_method} breaks under mixed precision")
    if c.noise_type == "none" and c.noise_rate:
        raise ConfigError("--noise_rate must be 0 with --noise_type=none")
    _choice("keras", c.keras, KERAS_LINES)
    if c.keras == "3":
        check_keras3(c, methods.is_gradual(c.prune_method))
    _range("replicates", c.replicates, 1)
    if c.replicates > 1:
        from keras_sdd.study.packed import check_packable  # local: the study package needs TensorFlow

        check_packable(c)
    if c.replicates > 1 and c.keras == "3":
        raise ConfigError("--replicates packs tf_keras models; with --keras=3 run one study per seed")
    data.validate(c.dataset, **c.data_options())
    models.validate(c.model, **{k: v for k, v in c.model_options().items() if k != "seed"})
    return c


#: Models the Keras 3 study runner builds (``keras_sdd.keras3.study``).
KERAS3_MODELS = ("fcn", "lenet300_100")


def check_keras3(c: StudyConfig, gradual: bool) -> None:
    """Refuses, in one line naming each, the settings the Keras 3 study runner does not support."""
    bad = [f"--{name}={value} ({why})" for name, value, why, ok in (
        ("study", c.study, "only sdd", c.study == "sdd"),
        ("model", c.model, f"only {', '.join(KERAS3_MODELS)}", c.model in KERAS3_MODELS),
        ("prune_method", c.prune_method, "tfmot's gradual schedules are Keras 2 only", not gradual),
        ("retrain", c.retrain, "only lr_rewind", c.retrain == "lr_rewind"),
        ("strategy", c.strategy, "only default", c.strategy == "default"),
        ("mixed_precision", c.mixed_precision, "only none", c.mixed_precision == "none"),
        ("jit_compile", c.jit_compile, "Keras 3 decides per backend", not c.jit_compile),
        ("input_pipeline", c.input_pipeline, "batches come from tf.data", c.input_pipeline != "in_graph"),
        ("eval_every_epochs", c.eval_every_epochs, "rounds are evaluated at their end", not c.eval_every_epochs),
        ("resume_from_round", c.resume_from_round, "--resume restarts the first unrecorded round",
         c.resume_from_round < 0)) if not ok]
    if bad:
        raise ConfigError(f"--keras=3 does not support {'; '.join(bad)}; drop them or use --keras=2")
