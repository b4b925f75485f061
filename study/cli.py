"""What the commands share: a user mistake is one line (``UsageError``, exit status 2), also from argparse, and
the flag types that say what they expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2, before anything is run or written."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes raise ``UsageError`` (one line, no usage dump)."""

    def error(self, message: str):
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


def non_negative_float(text: str) -> float:
    """A flag type: a number >= 0 (NaN refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
