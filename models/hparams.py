"""The hyperparameters of a trial: the network and optimiser ones declared here (and the LR schedules' names),
and ``TrialParams``, the one typed record of a trial. Torch-free to import: the driver reads it.

Each loss declares its own parameters in ``models.loss_catalogue``. ``TrialParams`` holds the base fields below and
the values of the parameters its loss takes (``loss_params``); the search space suggests these names, the trial
turns Tune's config dict into a record in one place (``TrialParams.from_config``), and the trials table has one
typed ``param_<name>`` column per name (``param_types``). A loss parameter added to the catalogue appears in all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from models.hparam import HParam
from models.loss_catalogue import ParamValue, loss_params, loss_spec

LR = HParam("lr", float)
WEIGHT_DECAY = HParam("weight_decay", float)
BASE_CHANNELS = HParam("base_channels", int)
DEPTH = HParam("depth", int)
LOSS = HParam("loss", str)
LR_SCHEDULE = HParam("lr_schedule", str)
LR_SCHEDULES = ("constant", "cosine", "onecycle")  # the values of LR_SCHEDULE; models/segmenter.py builds each
BASE_PARAMS = (LR, WEIGHT_DECAY, BASE_CHANNELS, DEPTH, LOSS, LR_SCHEDULE)


def all_params() -> tuple[HParam, ...]:
    """The base hyperparameters, then every loss parameter of the catalogue."""
    return (*BASE_PARAMS, *loss_params().values())


def param_types() -> dict[str, type]:
    """Every hyperparameter name with its Python type, in column order."""
    return {p.name: p.type for p in all_params()}


@dataclass(frozen=True)
class TrialParams:
    """A trial's hyperparameters, typed: the base ones, and the loss's own in ``loss_params`` (name -> value)."""

    lr: float
    weight_decay: float
    base_channels: int
    depth: int
    loss: str
    lr_schedule: str
    loss_params: Mapping[str, ParamValue] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> TrialParams:
        """The one place Tune's config dict becomes typed values.

        Raises:
            ValueError: an unknown name, a missing base parameter, or a value of the wrong type.
        """
        declared = {p.name: p for p in all_params()}
        unknown = sorted(set(config) - set(declared))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; expected a subset of {sorted(declared)}")
        missing = sorted(p.name for p in BASE_PARAMS if p.name not in config)
        if missing:
            raise ValueError(f"missing hyperparameters {missing}")
        values = {name: declared[name].cast(value) for name, value in config.items()}
        base = {p.name: values.pop(p.name) for p in BASE_PARAMS}
        extra = MappingProxyType({k: v for k, v in values.items() if v is not None})
        return cls(**base, loss_params=extra)

    def as_config(self) -> dict[str, ParamValue]:
        """Name -> value of every hyperparameter set, as Tune's config holds them."""
        base = {p.name: getattr(self, p.name) for p in BASE_PARAMS}
        return {**base, **self.loss_params}

    def loss_kwargs(self, task: str) -> dict[str, ParamValue]:
        """The values of the parameters ``self.loss`` takes for ``task``, leaving unset ones to their defaults."""
        spec = loss_spec(task, self.loss)
        return {p.name: self.loss_params[p.name] for p in spec.params if p.name in self.loss_params}
