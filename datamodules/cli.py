"""What every ``python -m`` tool of the project shares: its exit statuses, the one-line user mistake
(``UsageError``, also from argparse) and the flag types that say what they expected.

It sits in the lowest layer (``datamodules``) so that every tool above can import it: ``datamodules.preview``,
``results.report`` and ``results.show``, ``study.run`` and ``study.predict``.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Callable
from typing import NoReturn


class Exit(enum.IntEnum):
    """The exit statuses of the project's commands (README, "Exit status")."""

    OK = 0
    TRIAL_ERRORS = 1  # some trials errored (study.run)
    USAGE = 2  # refused before anything ran: a user mistake, with one line saying what to fix
    UNFINISHED = 3  # trials left unfinished for another reason, named (study.run)
    STORAGE = 74  # the storage failed (sysexits EX_IOERR)
    SIGINT = 130  # interrupted by Ctrl-C
    SIGTERM = 143  # interrupted by SIGTERM

    @staticmethod
    def for_signal(signum: int) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(signum)


class UsageError(Exception):
    """A user mistake or an unusable input: reported as one line, exit status 2, before anything is run or
    written. The project's refusals (an unusable checkpoint, a study directory that is not one, ...) subclass it."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes raise ``UsageError`` (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def whole_number(minimum: int) -> Callable[[str], int]:
    """A flag type: an integer at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def number_in(low: float, high: float) -> Callable[[str], float]:
    """A flag type: a number in [low, high] (NaN refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    return parse


def non_negative_float(text: str) -> float:
    """A flag type: a number >= 0 (NaN refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
