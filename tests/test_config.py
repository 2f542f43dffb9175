"""StudyConfig: JSON round trip and the one place bad settings are refused."""
import json

import pytest

from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig, validate


def test_json_round_trip():
    c = StudyConfig(hidden=(300, 100), milestones=(3, 6), classes=("3", "8"), epochs=8)
    again = StudyConfig.from_dict(json.loads(c.to_json()))
    assert again == c


def test_unknown_setting_refused():
    with pytest.raises(ConfigError, match="unknown study settings: colour"):
        StudyConfig.from_dict({"colour": "blue"})


def test_defaults_validate():
    validate(StudyConfig())


def test_round_epochs():
    assert StudyConfig(epochs=7).round_epochs == 7
    assert StudyConfig(epochs=7, retrain="finetune", finetune_epochs=3).round_epochs == 3
    assert StudyConfig(epochs=7, retrain="lr_rewind", finetune_epochs=3).round_epochs == 7


@pytest.mark.parametrize("changes, message", [
    (dict(noise_rate=1.0), r"--noise_rate=1.0 is out of range"),
    (dict(noise_rate=-0.1), r"--noise_rate=-0.1 is out of range"),
    (dict(prune_fraction=0.0), r"--prune_fraction"),
    (dict(final_sparsity=1.0), r"--final_sparsity"),
    (dict(retrain="rewind"), r"choose one of: lr_rewind, finetune, weight_rewind, scratch"),
    (dict(optimizer="rmsprop"), r"choose one of: sgd, adam, adamw"),
    (dict(lr_schedule="step"), r"choose one of: multistep, cosine, constant"),
    (dict(noise_type="asym"), r"choose one of: none, symmetric, uniform, pairflip"),
    (dict(dataset="imagenet"), r"unknown dataset 'imagenet'; valid choices: .*cifar10"),
    (dict(model="resnet50"), r"unknown model 'resnet50'; valid choices: .*resnet18"),
    (dict(prune_method="snip"), r"unknown pruning method 'snip'; valid choices: .*global_magnitude"),
    (dict(milestones=(120, 80)), r"increasing positive epochs"),
    (dict(milestones=(80, 200), epochs=160), r"must all be below --epochs=160"),
    (dict(weight_decay=0.1, optimizer="sgd"), r"use --l2"),
    (dict(rewind_step=3), r"only applies to --retrain=weight_rewind"),
    (dict(noise_type="none", noise_rate=0.2), r"--noise_rate must be 0"),
    (dict(epochs=0), r"--epochs=0 is out of range"),
    (dict(batch_size=0), r"--batch_size=0"),
    (dict(learning_rate=0.0), r"--learning_rate"),
    (dict(momentum=1.0), r"--momentum"),
    (dict(val_fraction=1.0), r"--val_fraction"),
    (dict(logdir=""), r"--logdir"),
    (dict(width=-3.0), r"width"),
])
def test_bad_settings_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(StudyConfig(**changes))
