import optuna
import pytest

from results.schema import PARAM_COLUMNS
from study.config import FULL, SMOKE
from study.space import PARAM_NAMES, Space, sampler
from study.trial import TrialParams

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_param_has_a_typed_table_column_and_a_trial_field():
    assert set(PARAM_NAMES) == set(PARAM_COLUMNS)
    assert set(PARAM_NAMES) == set(TrialParams.__dataclass_fields__)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("preset", [FULL, SMOKE], ids=["full", "smoke"])
def test_sampled_configs_build_valid_segmenters(task, preset):
    from models.segmenter import Segmenter

    study = optuna.create_study(sampler=sampler(0), direction="maximize")
    space = Space(task, preset.tasks[task])
    losses = set()
    for i in range(40):
        trial = study.ask()
        constants = space(trial) or {}
        config = {**trial.params, **constants}
        assert set(config) <= set(PARAM_NAMES)
        params = TrialParams.from_config(config)
        assert params.base_channels in preset.tasks[task].base_channels
        losses.add(params.loss)
        if i < 8:  # building is cheap but not free; a handful proves the names line up
            Segmenter(task, base_channels=params.base_channels, depth=params.depth, loss=params.loss,
                      lr=params.lr, lr_schedule=params.lr_schedule)  # fmt: skip
        study.tell(trial, float(i % 7))
    assert len(losses) >= 3


def test_unknown_hyperparameter_is_an_error():
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        TrialParams.from_config({"lr": 1e-3, "batch_size": 4})


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
