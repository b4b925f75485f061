"""How long ``python -m results.report`` takes on a 32-trial study: ``python -m bench.report [--trials 32]``.

Fabricates a full-preset study (both tasks, 50 epochs, ASHA rungs 5, 15, 45) with real files: ``study.json``,
an Optuna journal per task whose trials are suggested by the real search space (``study.space``) and told
COMPLETE or PRUNED as an ASHA-like rule cuts them, the two Parquet tables (epochs written through the pinned
schema, trials through ``StudyTables``), the parameter importances the study saves (``study.importance``) and
one real Lightning checkpoint per task (a tiny U-Net fitted for a few steps), which the report applies to
full-scale validation rasters. Then it times the report, once as a user runs it (a fresh
``python -m results.report``, imports included) and once in-process.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import optuna
import pyarrow as pa
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from datamodules.labels import TASKS
from models.inference import CHECKPOINT_FILE
from models.metric_names import METRICS
from results.plan import STUDY_FILE, StudyConfig
from results.report import asha_rungs, write_report
from results.schema import EPOCHS_SCHEMA
from results.tables import StudyTables, write_atomic
from study import importance
from study.presets import FULL
from study.space import Space, sampler

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 30.0  # the report must render in under this on 2 CPU cores


def tiny_checkpoint(task: str, path: Path) -> None:
    """A real Lightning checkpoint of a tiny segmenter, fitted for two steps on tiny rasters."""
    import lightning as L

    from datamodules.welllog import WellLogDataModule
    from models.segmenter import Segmenter

    data = WellLogDataModule(task, 4, 1, scale=0.05, seed=0)
    model = Segmenter(task, base_channels=4, depth=2, max_epochs=1)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", default_root_dir=path.parent,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)


def _curve(rng: np.random.Generator, quality: float, epochs: int) -> np.ndarray:
    """A plausible val_dice_fg learning curve: rises towards ``quality`` with noise."""
    tau = rng.uniform(3, 12)
    e = np.arange(1, epochs + 1)
    return np.clip(quality * (1 - np.exp(-e / tau)) + rng.normal(0, 0.01, epochs), 0, 1)


def fabricate(study_dir: Path, n_trials: int, seed: int = 0) -> StudyConfig:
    cfg = StudyConfig(
        name=study_dir.name, storage=str(study_dir.parent), preset=FULL.name, tasks=TASKS,
        task_presets=dict(FULL.tasks), epochs=FULL.epochs, num_samples=n_trials, max_concurrent=4,
        gpus_per_trial=FULL.gpus_per_trial, cpus_per_trial=FULL.cpus_per_trial, grace_period=FULL.grace_period,
        reduction_factor=FULL.reduction_factor, seed=seed, metric="val_dice_fg", dashboard=False,
    )  # fmt: skip
    study_dir.mkdir(parents=True)
    (study_dir / STUDY_FILE).write_text(cfg.to_json())
    rng = np.random.default_rng(seed)
    rungs = asha_rungs(cfg.grace_period, cfg.reduction_factor, cfg.epochs)
    start = datetime(2026, 11, 28, 14, 0, tzinfo=timezone.utc)
    epoch_rows, trial_rows = [], []
    for task in cfg.tasks:
        journal = study_dir / "optuna" / f"{task}.journal"
        journal.parent.mkdir(exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.create_study(study_name=task, storage=storage, sampler=sampler(seed), direction="maximize")
        space = Space(task, cfg.task_presets[task])
        at_rung: dict[int, list[float]] = {r: [] for r in rungs}
        clock = start
        for i in range(n_trials):
            trial = study.ask()
            space(trial)
            trial_id = f"{task[:1]}{i:07x}"
            trial.set_user_attr("ray_trial_id", trial_id)
            quality = 0.4 + 0.5 * math.exp(-abs(math.log10(trial.params["lr"]) + 2.5)) + rng.normal(0, 0.03)
            curve = _curve(rng, quality, cfg.epochs)
            seconds = rng.uniform(40, 60) * (2 if task == TASKS[-1] else 1)
            ran = cfg.epochs
            for r in rungs:  # ASHA: continue only in the top 1 / reduction_factor seen at this rung so far
                at_rung[r].append(float(curve[r - 1]))
                cut = np.quantile(at_rung[r], 1 - 1 / cfg.reduction_factor)
                if len(at_rung[r]) > 1 and curve[r - 1] < cut:
                    ran = r
                    break
            started = clock
            for e in range(1, ran + 1):
                trial.report(float(curve[e - 1]), e)
                values = dict.fromkeys(METRICS)
                values.update(val_dice_fg=float(curve[e - 1]), val_loss=float(1 - curve[e - 1]),
                              train_loss=float(1.1 - curve[e - 1]))  # fmt: skip
                epoch_rows.append(
                    {**values, "study": cfg.name, "task": task, "trial_id": trial_id, "epoch": e, "lr": 1e-3,
                     "epoch_seconds": seconds, "images_per_second": rng.uniform(20, 30),
                     "pad_fraction": rng.uniform(0.02, 0.06), "timestamp": started + timedelta(seconds=seconds * e)}
                )  # fmt: skip
            if ran < cfg.epochs:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, float(curve.max()))
            finished = started + timedelta(seconds=seconds * ran + 20)
            trial_rows.append((trial_id, task, "completed" if ran == cfg.epochs else "stopped_early",
                               trial.params, started, finished))  # fmt: skip
            clock += timedelta(seconds=seconds * ran / 4)  # four at once
    tables = study_dir / "tables"
    tables.mkdir()
    write_atomic(tables / "epochs.parquet", pa.Table.from_pylist(epoch_rows, schema=EPOCHS_SCHEMA))
    writer = StudyTables(tables, cfg.name, cfg.metric)
    for trial_id, task, status, params, started, finished in trial_rows:
        trial_dir = study_dir / task / f"trial_{trial_id}" / "checkpoint_000000"
        writer.record_trial(
            trial_id, task, status=status, params=params, epoch_budget=cfg.epochs, devices=cfg.gpus_per_trial,
            started_at=started, finished_at=finished, node="bench", checkpoint_path=str(trial_dir),
        )  # fmt: skip
    importance.record(writer)  # the parameter importances, as the study saves them
    # One real checkpoint per task, where the table says the best trial's is.
    from results.query import best_trials

    for _, row in best_trials(study_dir).iterrows():
        tiny_checkpoint(str(row["task"]), Path(str(row["checkpoint_path"])) / CHECKPOINT_FILE)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="trials per task (default 32)")
    parser.add_argument("--keep", type=Path, help="fabricate the study in this new directory and keep it")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a benchmark script: no per-trial lines
    with tempfile.TemporaryDirectory() as tmp:
        study_dir = args.keep if args.keep is not None else Path(tmp) / f"bench-{args.trials}"
        t0 = time.perf_counter()
        fabricate(study_dir, args.trials)
        print(f"fabricated {args.trials} trials x {len(TASKS)} tasks in {time.perf_counter() - t0:.1f} s")
        t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [sys.executable, "-m", "results.report", str(study_dir)], cwd=REPO, capture_output=True, text=True
        )
        cli = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        print(f"python -m results.report: {cli:.1f} s wall, {cpu:.1f} CPU-s (a fresh process, imports included)")
        print(f"  {proc.stdout.strip()}")
        load = os.getloadavg()[0]
        print(f"  machine load (1-min average) {load:.1f} on {os.cpu_count()} CPUs: the wall time grows with it")
        t0 = time.perf_counter()
        write_report(study_dir, Path(tmp) / "again.html")
        print(f"write_report again in this process: {time.perf_counter() - t0:.1f} s")
        verdict = "under" if cli < LIMIT_S else "OVER"
        print(f"{verdict} the {LIMIT_S:.0f} s limit ({cli / LIMIT_S:.0%} of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
