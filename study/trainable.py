"""The trainable the driver hands Ray: ``train_trial``. Torch-free to import.

Ray pickles it by reference, so the driver only names it; the trial's code (study/trial.py: torch, Lightning,
the model) is imported when the trainable runs, in the trial's worker.
"""

from __future__ import annotations

from typing import Any

from study.run_settings import RunSettings


def train_trial(config: dict[str, Any], run: RunSettings) -> None:
    """The Tune trainable (its name is the trials' name in Ray): one trial, ``study.trial.train``."""
    from study.trial import train  # here, not at import: the driver never imports torch or Lightning

    train(config, run)
