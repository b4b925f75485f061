"""A saved study, for ``--resume``: loading its plan (refusing one other users could write to, or whose tables
this version cannot take) and checking the plan flags given again against it."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from datamodules.cli import UsageError
from datamodules.labels import TASKS
from results.plan import STUDY_FILE, StudyConfig, expand_tasks
from results.query import TableError
from results.tables import check_resumable


def _check_not_writable_by_others(study_dir: Path) -> None:
    """Restore unpickles files from the study: refuse one that other users could have planted files in."""
    uid = os.getuid()
    for d in [study_dir, *(p for p in study_dir.iterdir() if p.is_dir())]:
        st = d.stat()
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid != uid:
            raise UsageError(
                f"refusing to resume from {d}: it is writable by other users or not yours "
                f"(resume unpickles files from it); fix with: chmod -R go-w {study_dir}"
            )


def load_study(study_dir: Path) -> StudyConfig:
    """The plan of the study at ``study_dir``, marked resumed; UsageError (one line) when it cannot be resumed."""
    if not study_dir.is_dir():
        raise UsageError(f"no study at {study_dir}; check --name and --storage (start one without --resume)")
    marker = study_dir / STUDY_FILE
    if not marker.is_file():
        raise UsageError(f"{study_dir} is not a study directory (no {STUDY_FILE}); check --name and --storage")
    _check_not_writable_by_others(study_dir)
    try:
        cfg = StudyConfig.from_json(marker.read_text()).with_resume()
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{marker} is damaged or from another version ({exc}); start a new study") from None
    from models.hparams import param_types  # imports torch: only when a study is resumed

    try:  # a damaged or newer table must stop the resume before Ray starts, not inside Tune's callback
        check_resumable(cfg.tables_dir, param_types())
    except TableError as exc:
        raise UsageError(f"{exc}; move the damaged file aside to resume without its rows") from None
    return cfg


def flag_of(dest: str) -> str:
    """The command-line spelling of an argparse dest: ``val_data`` -> ``--val-data``."""
    return "--" + dest.replace("_", "-")


def _saved_matches(cfg: StudyConfig, dest: str, given: Any) -> tuple[bool, Any]:
    """Whether the flag value ``given`` agrees with the saved plan, and the saved value in the flag's terms."""
    presets = [cfg.task_presets[t] for t in cfg.tasks]
    if dest == "task":
        saved = "both" if tuple(cfg.tasks) == TASKS else ",".join(cfg.tasks)
        return expand_tasks(given) == tuple(cfg.tasks), saved
    if dest == "preset":  # auto chose the saved preset when the study started
        return given in ("auto", cfg.preset), cfg.preset
    if dest in ("instances", "scale"):
        attr = "n_instances" if dest == "instances" else "scale"
        values = sorted({getattr(p, attr) for p in presets})
        return values == [given], values[0] if len(values) == 1 else values
    saved = getattr(cfg, dest)
    return saved == given, saved


def check_same_plan(cfg: StudyConfig, plan: dict[str, Any]) -> None:
    """UsageError naming every plan flag whose value differs from the saved plan, with both values."""
    differ = []
    for dest, given in plan.items():
        same, saved = _saved_matches(cfg, dest, given)
        if not same:
            differ.append(f"{flag_of(dest)} saved {saved}, given {given}")
    if differ:
        raise UsageError(
            f"--resume continues study {cfg.name!r} with its saved plan, and these flags differ from it: "
            f"{'; '.join(differ)}; drop them or give the saved values"
        )
