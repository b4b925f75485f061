"""``Compile``: whether a trial's network is torch.compiled (``--compile``). Torch-free to import, so the plan
and the command line can name it; ``models.compiled`` does the compiling."""

from __future__ import annotations

import enum


class Compile(str, enum.Enum):
    """A run-shape setting, saved in the plan, never searched; ``AUTO`` is the one default."""

    AUTO = "auto"  # on where the process that trains sees a CUDA device
    ON = "on"
    OFF = "off"

    def resolve(self) -> bool:
        """On or off. Call it where the network trains (the trial's worker), so AUTO follows the GPUs Ray gave it."""
        if self is not Compile.AUTO:
            return self is Compile.ON
        import torch  # here, not at import: the command line and the plan need no torch

        return bool(torch.cuda.is_available())

    def __str__(self) -> str:  # "auto", as the flag spells it
        return self.value


COMPILE_CHOICES = tuple(c.value for c in Compile)
