"""Parameter importance of one task's trials, by Optuna's own evaluator, from the trials table alone.

The trials table holds every hyperparameter as a typed ``param_<name>`` column; this module turns those rows
into an in-memory Optuna study (one COMPLETE trial per finished trial, valued by its best objective) and asks
``optuna.importance.get_param_importances`` (PED-ANOVA, Optuna's default evaluator) about it. It reads no
journal and imports no Ray, so a report can call it while a study still runs.

Each parameter's domain is the range the trials covered: strings are categorical, integers an integer range,
and a positive float that spans a factor of 10 or more is taken on a log scale (learning rate, weight decay,
``pos_weight``), as the search space samples them. A parameter that took a single value says nothing and is
left out. Trials stopped early by ASHA count with the best value they reached before the cut: that is what
they tell about their region of the space (Optuna's own journal marks them PRUNED and its evaluators skip them).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, TypeAlias

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from results.schema import FINISHED_STATUSES, PARAM_PREFIX

LOG_SPAN = 10.0  # a positive float parameter whose max / min reaches this is on a log scale
Direction: TypeAlias = Literal["minimize", "maximize"]  # an Optuna study's direction


def distributions(trials: pd.DataFrame) -> dict[str, BaseDistribution]:
    """The domain of every ``param_*`` column that took two or more values, keyed by parameter name."""
    out: dict[str, BaseDistribution] = {}
    for column in trials.columns:
        if not column.startswith(PARAM_PREFIX):
            continue
        values = trials[column].dropna()
        if values.nunique() < 2:
            continue
        name = column[len(PARAM_PREFIX) :]
        if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
            out[name] = CategoricalDistribution(sorted(str(v) for v in values.unique()))
        elif pd.api.types.is_integer_dtype(values.dtype):
            out[name] = IntDistribution(int(values.min()), int(values.max()))
        else:
            low, high = float(values.min()), float(values.max())
            out[name] = FloatDistribution(low, high, log=low > 0 and high / low >= LOG_SPAN)
    return out


def _value(dist: BaseDistribution, value: str | float) -> str | int | float:
    if isinstance(dist, CategoricalDistribution):
        return str(value)
    if isinstance(dist, IntDistribution):
        return int(value)
    return float(value)


def tables_study(trials: pd.DataFrame, direction: Direction) -> optuna.Study:
    """An in-memory Optuna study of the finished trials with a finite ``objective_best``.

    Args:
        trials: rows of one task of the trials table.
        direction: "minimize" or "maximize".
    """
    finished = trials[trials["status"].isin(FINISHED_STATUSES).fillna(False).astype(bool)]
    finished = finished[finished["objective_best"].astype(float).map(math.isfinite).fillna(False).astype(bool)]
    dists = distributions(finished)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage())
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in finished.iterrows():
        params = {n: _value(d, row[PARAM_PREFIX + n]) for n, d in dists.items() if not pd.isna(row[PARAM_PREFIX + n])}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={n: dists[n] for n in params},
                value=float(row["objective_best"]),
                state=TrialState.COMPLETE,
                user_attrs={"trial_id": str(row["trial_id"]), "status": str(row["status"])},
            )
        )
    return study


def param_importances(trials: pd.DataFrame, direction: Direction) -> dict[str, float]:
    """Importance of each parameter (normalised to sum to 1), most important first; {} with fewer than two
    finished trials of different values, or no parameter that varied."""
    study = tables_study(trials, direction)
    values = {t.value for t in study.trials}
    if len(values) < 2 or not any(t.params for t in study.trials):
        return {}
    with warnings.catch_warnings():  # PED-ANOVA warns that a few trials make a rough estimate: the report says so
        warnings.simplefilter("ignore")
        return dict(optuna.importance.get_param_importances(study))
