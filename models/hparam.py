"""``HParam``: how a hyperparameter is declared, once, wherever it lives (``models.hparams`` for the network and
the optimiser, ``models.loss_catalogue`` for each loss's own)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class HParam:
    """A hyperparameter: its name (the same wherever it appears), Python type and default (None: required)."""

    name: str
    type: type
    default: Any = None

    def cast(self, value: object) -> Any:
        """``value`` as this parameter's type (None stays None); ValueError naming the parameter otherwise."""
        if value is None:
            return None
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ValueError(f"hyperparameter {self.name!r} must be a whole number, got {value!r}")
            return int(value)
        if self.type is float:
            if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
                raise ValueError(f"hyperparameter {self.name!r} must be a number, got {value!r}")
            return float(value)
        if not isinstance(value, str):
            raise ValueError(f"hyperparameter {self.name!r} must be a string, got {value!r}")
        return value
