"""Search spaces per task, as Optuna define-by-run functions.

The names come from the model side, from its torch-free modules: losses and their parameters from
``models.loss_catalogue.LOSSES``, schedules from ``models.hparams.LR_SCHEDULES``; this module only says how each is
searched (``DOMAINS``). Batch size and the collate are fixed by the run shape, never searched. A loss's parameters
are suggested only when that loss is (a conditional space), so the tables hold nulls, not meaningless values. The
domains and the reasons for each are in docs/search-space.md.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from models import loss_catalogue
from models.hparam import HParam
from models.hparams import BASE_CHANNELS, DEPTH, LOSS, LR, LR_SCHEDULE, LR_SCHEDULES, WEIGHT_DECAY
from models.loss_catalogue import LOSSES, WEIGHT_SCHEMES
from results.plan import TaskPreset

# How each loss parameter is searched (docs/search-space.md, 'Losses and their parameters'). Every parameter in
# the loss catalogue needs one.
DOMAINS: dict[HParam, BaseDistribution] = {
    loss_catalogue.POS_WEIGHT: FloatDistribution(1.0, 100.0, log=True),
    loss_catalogue.CLASS_WEIGHTING: CategoricalDistribution(WEIGHT_SCHEMES),
    loss_catalogue.DICE_WEIGHT: CategoricalDistribution((0.5, 1.0, 2.0)),
    loss_catalogue.FOCAL_GAMMA: CategoricalDistribution((1.0, 2.0, 3.0)),
    loss_catalogue.FOCAL_ALPHA: CategoricalDistribution((0.25, 0.5, 0.75)),
    loss_catalogue.TVERSKY_ALPHA: CategoricalDistribution((0.2, 0.3)),
    loss_catalogue.TVERSKY_BETA: CategoricalDistribution((0.7, 0.8)),
    loss_catalogue.TVERSKY_GAMMA: CategoricalDistribution((0.75, 1.33)),
}


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> CategoricalChoiceType:
    """Suggest ``name`` from ``dist`` through Optuna's public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"no suggest call for {type(dist).__name__} ({name})")


class Space:
    """The define-by-run space of one task; ``preset`` bounds the network sizes.

    A class, not a closure: the searcher (and this space) is pickled into Ray's experiment state.
    """

    def __init__(self, task: str, preset: TaskPreset) -> None:
        self.task = task
        self.preset = preset

    def distributions(self) -> dict[str, BaseDistribution]:
        """What every trial suggests, by name, in order; then its loss adds ``loss_distributions(loss)``."""
        domains = {
            LR: FloatDistribution(1e-4, 3e-2, log=True),
            WEIGHT_DECAY: FloatDistribution(1e-6, 1e-2, log=True),
            BASE_CHANNELS: CategoricalDistribution(self.preset.base_channels),
            DEPTH: IntDistribution(*self.preset.depths),
            LR_SCHEDULE: CategoricalDistribution(LR_SCHEDULES),
            LOSS: CategoricalDistribution(tuple(LOSSES[self.task])),
        }
        return {p.name: d for p, d in domains.items()}

    def loss_distributions(self, loss: str) -> dict[str, BaseDistribution]:
        return {p.name: DOMAINS[p] for p in LOSSES[self.task][loss].params}

    def __call__(self, trial: optuna.Trial) -> None:
        for name, dist in self.distributions().items():
            suggest(trial, name, dist)
        for name, dist in self.loss_distributions(trial.params["loss"]).items():
            suggest(trial, name, dist)


def sampler(seed: int) -> optuna.samplers.TPESampler:
    """Seeded multivariate TPE; constant liar so parallel trials do not all sample the same region."""
    with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
