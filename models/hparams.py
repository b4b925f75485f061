"""The hyperparameters of a trial: each declared once, and the one typed record derived from them.

``HParam`` declares a hyperparameter (name, type, default). The network and optimiser ones are below; each loss
declares its own in ``models.losses``. ``TrialParams`` is the record of a trial: these base fields plus one field
per loss parameter (None where the trial's loss does not take it). The search space suggests these, the trial
turns Tune's config dict into a record in one place (``TrialParams.from_config``), and the trials table has one
typed ``param_<name>`` column per field (``param_types``). A loss parameter added to the catalogue appears in
all of them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class HParam:
    """A hyperparameter: its name (the same wherever it appears), Python type and default (None: required)."""

    name: str
    type: type
    default: Any = None


LR = HParam("lr", float)
WEIGHT_DECAY = HParam("weight_decay", float)
BASE_CHANNELS = HParam("base_channels", int)
DEPTH = HParam("depth", int)
LOSS = HParam("loss", str)
LR_SCHEDULE = HParam("lr_schedule", str)
BASE_PARAMS = (LR, WEIGHT_DECAY, BASE_CHANNELS, DEPTH, LOSS, LR_SCHEDULE)


def _cast(name: str, typ: type, value: Any) -> Any:
    if value is None:
        return None
    if typ is int:
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError(f"hyperparameter {name!r} must be a whole number, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, (bool, str)):
            raise ValueError(f"hyperparameter {name!r} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"hyperparameter {name!r} must be a string, got {value!r}")
    return value


def all_params() -> tuple[HParam, ...]:
    """The base hyperparameters, then every loss parameter of the catalogue."""
    from models.losses import loss_params  # the catalogue imports HParam from here

    return (*BASE_PARAMS, *loss_params().values())


def param_types() -> dict[str, type]:
    """Every hyperparameter name with its Python type, in column order."""
    return {p.name: p.type for p in all_params()}


def _from_config(cls, config: Mapping[str, Any]) -> Any:
    """The one place Tune's config dict becomes typed values; unknown keys and missing base fields are errors."""
    types = param_types()
    unknown = sorted(set(config) - set(types))
    if unknown:
        raise ValueError(f"unknown hyperparameters {unknown}; expected a subset of {sorted(types)}")
    missing = sorted(p.name for p in BASE_PARAMS if p.name not in config)
    if missing:
        raise ValueError(f"missing hyperparameters {missing}")
    return cls(**{k: _cast(k, types[k], v) for k, v in config.items()})


@functools.cache
def _trial_params() -> type:
    base = [(p.name, p.type) for p in BASE_PARAMS]
    losses = [(p.name, p.type | None, dataclasses.field(default=None)) for p in all_params()[len(BASE_PARAMS) :]]
    cls = dataclasses.make_dataclass(
        "TrialParams",
        base + losses,
        frozen=True,
        namespace={"from_config": classmethod(_from_config), "__module__": __name__},
    )
    cls.__doc__ = "A trial's hyperparameters, typed; loss parameters the trial's loss does not take are None."
    return cls


def __getattr__(name: str) -> Any:  # TrialParams is built on first use: the loss catalogue imports this module
    if name == "TrialParams":
        return _trial_params()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loss_kwargs(params: Any, task: str) -> dict[str, Any]:
    """The values of the parameters that ``params.loss`` takes for ``task``, leaving unset ones to defaults."""
    from models.losses import loss_spec

    spec = loss_spec(task, params.loss)
    values = {p.name: getattr(params, p.name) for p in spec.params}
    return {k: v for k, v in values.items() if v is not None}
