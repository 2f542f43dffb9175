"""Runs a sparse double descent study: ``python -m apps.sdd --flagfile=configs/quickstart.flags``.

Round 0 trains the dense model; every later round prunes (global magnitude IMP by default: 20 % of the
remaining weights) and retrains; each round is recorded in ``<logdir>/rounds.csv``, ``summary.json`` and
TensorBoard (``tensorboard --logdir <logdir>``). ``--resume`` continues an interrupted study.
A flagfile is the record of an experiment: the flags used are copied to ``<logdir>/flags.txt``.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import sys

from absl import app, flags, logging

from keras_sdd import console

console.quiet_native_logs()  # before TensorFlow loads: its native start-up lines never reach the console

import keras_sdd.legacy_keras  # noqa: E402,F401  (pins Keras 2 for tfmot before TensorFlow loads)
from keras_sdd import config as config_lib  # noqa: E402
from keras_sdd.config import StudyConfig  # noqa: E402
from keras_sdd.errors import ConfigError  # noqa: E402

FLAGS = flags.FLAGS
_D = StudyConfig()

# --- the study ------------------------------------------------------------------------------------------
flags.DEFINE_enum("study", _D.study, config_lib.STUDIES, "Kind of study.")
flags.DEFINE_string("logdir", _D.logdir, "Study directory: rounds.csv, summary.json, TensorBoard, checkpoints.")
flags.DEFINE_bool("resume", _D.resume, "Continue the study in --logdir from its last checkpoint.")
flags.DEFINE_integer("seed", _D.seed, "One seed for label noise, initialisation, shuffling and masks.", lower_bound=0)
# --- data -------------------------------------------------------------------------------------------------
flags.DEFINE_string("dataset", _D.dataset, "Dataset name (keras_sdd.data.DATASETS).")
flags.DEFINE_string("data_dir", _D.data_dir, "tensorflow-datasets data_dir (default: tfds's own / TFDS_DATA_DIR).")
flags.DEFINE_bool("download", _D.download, "Let tensorflow-datasets download the data (needs internet).")
flags.DEFINE_string("data_path", _D.data_path, "npz file, image folder, or folder of CIFAR-N label files.")
flags.DEFINE_list("classes", list(_D.classes), "Keep only these classes (names or ids), relabelled 0..K-1.")
flags.DEFINE_integer("train_subset", _D.train_subset, "Use a seeded subset of N training examples (0: all).",
                     lower_bound=0)
flags.DEFINE_float("val_fraction", _D.val_fraction, "Share of the training set held out for validation.",
                   lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_enum("noise_type", _D.noise_type, config_lib.NOISE_TYPES, "Label noise on the training split: symmetric (a wrong class, seed 1), uniform (redrawn from all K classes as OpenLTH does, seed 2: ≈ε·(K−1)/K wrong), pairflip (y→y+1).")
flags.DEFINE_float("noise_rate", _D.noise_rate, "ε: share of training labels made wrong, in [0, 1).",
                   lower_bound=0.0)
flags.DEFINE_string("human_label", _D.human_label, "CIFAR-N human label: aggre|worse|random1..3 (cifar10_n), "
                    "noisy (cifar100_n).")
flags.DEFINE_enum("augment", _D.augment, config_lib.AUGMENTS, "Training augmentation.")
flags.DEFINE_enum("gmm_task", _D.gmm_task, config_lib.GMM_TASKS, "Gaussian mixture task.")
flags.DEFINE_integer("gmm_dim", _D.gmm_dim, "Gaussian mixture dimension D.", lower_bound=2)
flags.DEFINE_float("gmm_bayes_accuracy", _D.gmm_bayes_accuracy, "Bayes accuracy the mixture's separation gives.")
flags.DEFINE_float("gmm_nu", _D.gmm_nu, "Cluster distance ν of the mixture, set directly (0: from "
                   "--gmm_bayes_accuracy); linear means ±ν/2·u, XOR ±ν/2·u1 ±ν/2·u2.", lower_bound=0.0)
flags.DEFINE_integer("gmm_train_size", _D.gmm_train_size, "Gaussian mixture training examples.", lower_bound=2)
flags.DEFINE_integer("gmm_test_size", _D.gmm_test_size, "Gaussian mixture test examples.", lower_bound=1)
# --- model ------------------------------------------------------------------------------------------------
flags.DEFINE_string("model", _D.model, "Model name (keras_sdd.models.MODELS).")
flags.DEFINE_float("width", _D.width, "Width setting: FCN units, VGG γ (2^γ channels), ResNet multiplier, ViT dim.")
flags.DEFINE_integer("depth", _D.depth, "Depth setting: FCN hidden layers, VGG blocks δ, ViT blocks.")
flags.DEFINE_list("hidden", [str(h) for h in _D.hidden], "FCN hidden widths, e.g. 300,100; with --width, the "
                  "fixed layers after the --depth layers of --width units (--width=50 --hidden=100: 784→50→100→10).")
flags.DEFINE_integer("vit_patch_size", _D.vit_patch_size, "ViT patch size.", lower_bound=1)
flags.DEFINE_integer("vit_heads", _D.vit_heads, "ViT attention heads.", lower_bound=1)
flags.DEFINE_integer("vit_mlp_dim", _D.vit_mlp_dim, "ViT MLP width.", lower_bound=1)
flags.DEFINE_float("dropout", _D.dropout, "ViT dropout.", lower_bound=0.0, upper_bound=0.99)
# --- pruning ----------------------------------------------------------------------------------------------
flags.DEFINE_string("prune_method", _D.prune_method, "global_magnitude | layerwise_magnitude | random | "
                    "tfmot_constant | tfmot_polynomial.")
flags.DEFINE_float("prune_fraction", _D.prune_fraction, "ζ_iter: share of the remaining weights pruned per round.")
flags.DEFINE_float("final_sparsity", _D.final_sparsity, "ζ_end: prune until the global sparsity reaches this.")
flags.DEFINE_integer("max_rounds", _D.max_rounds, "Stop after this many pruning rounds (0: until ζ_end).",
                     lower_bound=0)
flags.DEFINE_bool("keep_output_dense", _D.keep_output_dense, "Never prune the output layer.")
flags.DEFINE_bool("prune_only_dense", _D.prune_only_dense, "Prune Dense layers only (as the ViT studies do).")
flags.DEFINE_integer("prune_frequency", _D.prune_frequency, "tfmot gradual methods: steps between mask updates.",
                     lower_bound=1)
# --- retraining -------------------------------------------------------------------------------------------
flags.DEFINE_enum("retrain", _D.retrain, config_lib.RETRAIN_MODES, "How each pruned network is retrained.")
flags.DEFINE_integer("rewind_step", _D.rewind_step, "weight_rewind: step k of the dense run to rewind to.",
                     lower_bound=0)
flags.DEFINE_float("finetune_lr", _D.finetune_lr, "finetune: constant learning rate.")
flags.DEFINE_integer("finetune_epochs", _D.finetune_epochs, "finetune: epochs per round (0: --epochs).",
                     lower_bound=0)
# --- training policy ----------------------------------------------------------------------------------------
flags.DEFINE_enum("optimizer", _D.optimizer, config_lib.OPTIMIZERS, "Optimizer.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Initial learning rate.")
flags.DEFINE_float("momentum", _D.momentum, "SGD momentum.", lower_bound=0.0)
flags.DEFINE_float("weight_decay", _D.weight_decay, "AdamW decoupled weight decay.", lower_bound=0.0)
flags.DEFINE_float("l2", _D.l2, "λ of the ℓ2 penalty λ/2·Σ‖kernel‖².", lower_bound=0.0)
flags.DEFINE_enum("lr_schedule", _D.lr_schedule, config_lib.LR_SCHEDULES, "Learning-rate schedule of a round.")
flags.DEFINE_list("milestones", [str(m) for m in _D.milestones], "multistep: epochs where the LR is multiplied "
                  "by --lr_gamma.")
flags.DEFINE_float("lr_gamma", _D.lr_gamma, "multistep: LR factor at each milestone.")
flags.DEFINE_integer("epochs", _D.epochs, "Epochs per round.", lower_bound=1)
flags.DEFINE_integer("batch_size", _D.batch_size, "Batch size.", lower_bound=1)
# --- running ----------------------------------------------------------------------------------------------
flags.DEFINE_integer("steps_per_execution", _D.steps_per_execution, "Training steps per compiled call.",
                     lower_bound=1)
flags.DEFINE_float("checkpoint_every_secs", _D.checkpoint_every_secs, "Save the latest epoch at most this often.",
                   lower_bound=0.0)
flags.DEFINE_integer("eval_every_epochs", _D.eval_every_epochs, "Validate every N epochs (0: at round end only).",
                     lower_bound=0)
flags.DEFINE_bool("deterministic", _D.deterministic, "TensorFlow op determinism.")
flags.DEFINE_integer("threads", _D.threads, "TensorFlow intra- and inter-op threads (0: TensorFlow's default). "
                     "Tiny models train fastest with 1.", lower_bound=0)
flags.DEFINE_integer("resume_from_round", _D.resume_from_round, "With --resume: restart after this recorded round "
                     "from its round checkpoint (when the latest checkpoint is damaged).", lower_bound=-1)
flags.DEFINE_enum("mixed_precision", _D.mixed_precision, config_lib.MIXED_PRECISION, "Compute in bfloat16 or "
                  "float16 (variables, masks' effect, logits and loss stay float32; float16 adds loss scaling).")
flags.DEFINE_bool("jit_compile", _D.jit_compile, "XLA-compile the training step (often slower on a CPU).")
flags.DEFINE_enum("strategy", _D.strategy, config_lib.STRATEGIES, "tf.distribute strategy: default (one device), "
                  "mirrored (all local GPUs, or logical CPUs), multi_worker (TF_CONFIG), tpu. --batch_size is "
                  "the global batch, split across replicas.")
flags.DEFINE_enum("input_pipeline", _D.input_pipeline, config_lib.INPUT_PIPELINES, "Where training batches "
                  "are made: in_graph (inside the compiled train call: fastest on a CPU, one device), tf_data "
                  "(a tf.data pipeline, overlapping an accelerator), auto (in_graph on a CPU-only machine with "
                  "--strategy=default, else tf_data). The batches, hence the results, are the same.")
flags.DEFINE_enum("keras", _D.keras, config_lib.KERAS_LINES, "Which Keras trains the study: 2 (tf_keras + "
                  "tfmot wrappers, the default) or 3 (the Keras 3 path, keras_sdd.keras3: kernel masks on variable "
                  "constraints; --study=sdd on fcn / lenet300_100 with between-round pruning and lr_rewind).")
flags.DEFINE_integer("replicates", _D.replicates, "R > 1: R replicates of the study (seeds --seed..--seed+R-1, each "
                     "in <logdir>/seed=S) trained packed in one model and one compiled step (FCN models, "
                     "--study=sdd; see keras_sdd.study.packed).", lower_bound=1)
# --- distillation (--study=kd) ------------------------------------------------------------------------------
flags.DEFINE_string("teacher", _D.teacher, "Teacher: a study directory (its dense round), DIR:best (highest "
                    "validation accuracy), DIR:round=K, or a saved Keras model file.")
flags.DEFINE_string("teacher_flagfile", _D.teacher_flagfile, "If the --teacher directory holds no finished study, "
                    "run this flagfile's study there first (resumable).")
flags.DEFINE_float("kd_alpha", _D.kd_alpha, "α: weight of the distillation term, in [0, 1].")
flags.DEFINE_float("kd_temperature", _D.kd_temperature, "τ: distillation temperature, > 0.")
# --- ℓ2 study (--study=l2) ------------------------------------------------------------------------------------
flags.DEFINE_list("l2_values", [str(v) for v in _D.l2_values], "--study=l2: one SDD study per λ, e.g. 1e-4,0.03,1,3.")
# --- what each round records ------------------------------------------------------------------------------------
flags.DEFINE_integer("ece_bins", _D.ece_bins, "Equal-width confidence bins of the expected calibration error.",
                     lower_bound=1)
flags.DEFINE_string("co2_country", _D.co2_country, "ISO 3166 alpha-3 code of the electricity grid (codecarbon).")
flags.DEFINE_bool("track_energy", _D.track_energy, "Record energy and CO2 per round (codecarbon, offline).")
flags.DEFINE_bool("save_predictions", _D.save_predictions, "Keep each round's test predictions (calibration).")
flags.DEFINE_integer("early_stop_patience", _D.early_stop_patience, "End the pruning after this many rounds in a "
                     "row whose validation accuracy falls more than --early_stop_tolerance below the best (0: off).",
                     lower_bound=0)
flags.DEFINE_float("early_stop_tolerance", _D.early_stop_tolerance, "How far (accuracy, 0..1) below the best "
                   "validation accuracy counts as a fall.", lower_bound=0.0, upper_bound=1.0)


def _int_list(name: str, values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"--{name}={','.join(values)} must be a comma-separated list of integers") from None


# Each flag's own range is a validator here, so a bad value is refused while flags are parsed.
flags.register_validator("noise_rate", lambda v: 0.0 <= v < 1.0, "--noise_rate must lie in [0, 1)")
flags.register_validator("prune_fraction", lambda v: 0.0 < v < 1.0, "--prune_fraction must lie in (0, 1)")
flags.register_validator("final_sparsity", lambda v: 0.0 < v < 1.0, "--final_sparsity must lie in (0, 1)")
flags.register_validator("learning_rate", lambda v: v > 0, "--learning_rate must be positive")
flags.register_validator("finetune_lr", lambda v: v > 0, "--finetune_lr must be positive")
flags.register_validator("momentum", lambda v: v < 1.0, "--momentum must lie in [0, 1)")
flags.register_validator("lr_gamma", lambda v: 0.0 < v <= 1.0, "--lr_gamma must lie in (0, 1]")
flags.register_validator("gmm_bayes_accuracy", lambda v: 0.5 < v < 1.0, "--gmm_bayes_accuracy must lie in (0.5, 1)")
flags.register_validator("width", lambda v: v is None or v > 0, "--width must be positive")
flags.register_validator("depth", lambda v: v is None or v > 0, "--depth must be positive")
flags.register_validator("logdir", bool, "--logdir must name the study directory")
flags.register_validator("kd_alpha", lambda v: 0.0 <= v <= 1.0, "--kd_alpha must lie in [0, 1]")
flags.register_validator("kd_temperature", lambda v: v > 0, "--kd_temperature must be positive")
for _name in ("hidden", "milestones"):
    flags.register_validator(_name, lambda v: all(s.strip().lstrip("-").isdigit() and int(s) > 0 for s in v),
                             f"--{_name} must be a comma-separated list of positive integers")


def _float_list(name: str, values):
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ConfigError(f"--{name}={','.join(values)} must be a comma-separated list of numbers") from None


#: Flags whose list values become tuples of numbers in the config.
_CONVERT = {"hidden": _int_list, "milestones": _int_list, "l2_values": _float_list}


def config_from_flags(f=FLAGS) -> StudyConfig:
    """The one translation of flags into a StudyConfig: every config field is the flag of the same name."""
    values = {}
    for field in dataclasses.fields(StudyConfig):
        value = f[field.name].value
        if field.name in _CONVERT:
            value = _CONVERT[field.name](field.name, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return StudyConfig(**values)


def teacher_config(path: str, logdir: str) -> StudyConfig:
    """The StudyConfig of a teacher flagfile, with its study directory set to the --teacher directory."""
    fv = copy.deepcopy(FLAGS)
    fv.unparse_flags()
    verbosity = logging.get_verbosity()  # absl's --verbosity flag sets the process's level when parsed
    try:
        fv([sys.argv[0], f"--flagfile={path}", f"--logdir={logdir}"])
    except flags.Error as e:
        raise ConfigError(f"--teacher_flagfile={path}: {e}") from None
    finally:
        logging.set_verbosity(verbosity)
    return config_lib.validate(config_from_flags(fv))


def main(argv):
    del argv  # console.parse_flags refused any stray argument
    console.configure_logging()
    try:
        config = config_lib.validate(config_from_flags())
        kind_options = {}
        if config.teacher_flagfile:
            if not os.path.isfile(config.teacher_flagfile):
                raise ConfigError(f"--teacher_flagfile={config.teacher_flagfile} is not a file")
            from keras_sdd.study.loading import parse_teacher

            teacher_dir = parse_teacher(config.teacher)["path"]
            kind_options["teacher_config"] = teacher_config(config.teacher_flagfile, teacher_dir)
        from keras_sdd import process
        from keras_sdd.study import runner

        process.setup_for(config)
        process.warn_slow_options(config)
        summary = runner.run_study(config, record_files={"flags.txt": FLAGS.flags_into_string()}, **kind_options)
    except (ConfigError, OSError) as e:   # OSError: a failed write (full disk), one line naming the path
        console.refuse(e)
    print(f"study written to {config.logdir} ({summary['rounds_done']} rounds); "
          f"TensorBoard: tensorboard --logdir {config.logdir}")


#: --help groups the flags by these topics (title, first flag of the topic); --helpshort lists KEY_FLAGS.
HELP_TOPICS = (("the study", "study"), ("data", "dataset"), ("model", "model"), ("pruning", "prune_method"),
               ("retraining", "retrain"), ("training policy", "optimizer"), ("running", "steps_per_execution"),
               ("distillation (--study=kd)", "teacher"), ("ℓ2 study (--study=l2)", "l2_values"),
               ("what each round records", "ece_bins"))
KEY_FLAGS = ("flagfile", "logdir", "resume", "study", "seed", "dataset", "noise_type", "noise_rate", "model",
             "width", "depth", "prune_method", "prune_fraction", "final_sparsity", "max_rounds", "retrain",
             "optimizer", "learning_rate", "lr_schedule", "epochs", "batch_size", "l2", "teacher", "l2_values",
             "threads", "verbosity")


def run():
    """Console entry point (``keras-sdd``)."""
    console.set_help_layout(console.HelpLayout(
        "python -m apps.sdd --flagfile=configs/quickstart.flags [--flag=value ...]: a sparse double descent study",
        HELP_TOPICS, KEY_FLAGS, module=__name__))
    app.run(main, flags_parser=console.parse_flags)


if __name__ == "__main__":
    run()
