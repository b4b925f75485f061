import optuna
import pytest

from datamodules.labels import TASKS
from models.hparams import TrialParams, param_types
from models.loss_catalogue import LOSSES
from models.segmenter import Segmenter
from study.presets import FULL, SMOKE
from study.space import DOMAINS, Space, sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_loss_parameter_has_a_search_domain_and_a_trial_field():
    params = {p for specs in LOSSES.values() for spec in specs.values() for p in spec.params}
    assert params == set(DOMAINS)
    assert {p.name for p in params} <= set(param_types())
    every = {"lr": 1e-3, "weight_decay": 0.0, "base_channels": 8, "depth": 3, "loss": "dice", "lr_schedule": "constant"}
    record = TrialParams.from_config({**every, **{p.name: p.default for p in params}})
    assert set(record.as_config()) == set(param_types())  # the record holds every declared name


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("preset", [FULL, SMOKE], ids=["full", "smoke"])
def test_sampled_configs_build_valid_segmenters(task, preset):
    study = optuna.create_study(sampler=sampler(0), direction="maximize")
    space = Space(task, preset.tasks[task])
    losses = set()
    for i in range(40):
        trial = study.ask()
        space(trial)
        params = TrialParams.from_config(trial.params)
        assert params.base_channels in preset.tasks[task].base_channels
        # exactly the chosen loss's parameters were suggested, and only those
        assert set(trial.params) - set(space.distributions()) == {p.name for p in LOSSES[task][params.loss].params}
        losses.add(params.loss)
        if i < 8:  # building is cheap but not free; a handful proves the names line up
            Segmenter(task, base_channels=params.base_channels, depth=params.depth, loss=params.loss,
                      loss_params=params.loss_kwargs(task), class_frequencies=(0.96, 0.03, 0.01)[: 2 if task ==
                      "binary" else 3], lr=params.lr, lr_schedule=params.lr_schedule)  # fmt: skip
        study.tell(trial, float(i % 7))
    assert len(losses) >= 3


def test_unknown_or_missing_hyperparameter_is_an_error():
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        TrialParams.from_config({"lr": 1e-3, "batch_size": 4})
    with pytest.raises(ValueError, match="missing hyperparameters"):
        TrialParams.from_config({"lr": 1e-3})


def test_seeded_sampler_is_reproducible():
    def draws(seed):
        study = optuna.create_study(sampler=sampler(seed))
        space = Space("binary", SMOKE.tasks["binary"])
        out = []
        for _ in range(5):
            t = study.ask()
            space(t)
            out.append(t.params)
            study.tell(t, 0.5)
        return out

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
