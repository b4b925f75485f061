"""What a study writes to its storage every epoch, and what that costs: a trial's checkpoint and the study's
tables, on a local path and on an S3 server, for the smoke networks and the largest of the full space.

A checkpoint is what Lightning saves for a trial (``models.segmenter.Segmenter``'s weights and AdamW's two
moments, fp32: 12 bytes a parameter), copied to the storage the way Ray Tune persists it (``pyarrow.fs
.copy_files`` into ``storage_filesystem``); the tables are both Parquet files of a study of ``--trials`` trials
x ``--epochs`` epochs, written and sent as the driver does (``results.tables``, ``study.mirror``). The S3
server is moto's, started here on 127.0.0.1: its figures are the protocol's and this machine's, not a cloud's
bandwidth (a single S3 stream from a cloud VM moves roughly 100-300 MB/s; divide the MB by that for a cloud
estimate). Each figure is the median of ``--repeat`` runs, local and S3 side by side in one run. The share of
an epoch is against the full preset's per-epoch time at the measured H200 rates (``bench/measured/h200.json``,
``bench.studycost``).

    python -m bench.storage
    python -m bench.storage --networks smoke --repeat 1     # seconds, for a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.fs as pafs

from study.presets import PRESETS

MEASURED = Path(__file__).with_name("measured") / "h200.json"
BUCKET = "bench-storage"


def networks(which: str) -> list[tuple[str, str, int, int]]:
    """(label, task, base_channels, depth): the smoke preset's largest per task and the full space's largest."""
    chosen = []
    for preset in ("smoke", "full") if which == "both" else (which,):
        for task, tp in PRESETS[preset].tasks.items():
            chosen.append((f"{preset} largest", task, max(tp.base_channels), max(tp.depths)))
    return chosen


def write_checkpoint(task: str, base: int, depth: int, into: Path) -> Path:
    """A trial checkpoint of this network: weights and AdamW's state after one step (as Lightning saves it)."""
    import torch

    from models.segmenter import Segmenter

    model = Segmenter(task, base_channels=base, depth=depth)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimiser.step()  # allocates both moments
    folder = into / "checkpoint_000000"
    folder.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "optimizer_states": [optimiser.state_dict()]}, folder / "c.ckpt")
    return folder


def write_tables(into: Path, trials: int, epochs: int) -> Path:
    """Both tables of a study of ``trials`` x ``epochs`` (every epoch reported), written by ``StudyTables``."""
    from results.tables import StudyTables

    tables = StudyTables(into / "tables", "bench", "val_dice_fg")
    tables.held = True  # rows in memory; one write at the end
    for t in range(trials):
        tid = f"t{t:04d}"
        tables.record_trial(
            tid, "binary", status="running", params={}, epoch_budget=epochs, devices=1.0, started_at=None,
            finished_at=None, node="n", checkpoint_path=None,
        )  # fmt: skip
        for e in range(1, epochs + 1):
            tables.record_epoch(tid, "binary", e, {"val_dice_fg": 0.5 + e / 1000, "lr": 1e-3})
    tables.flush()
    return into / "tables"


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@contextlib.contextmanager
def s3_store() -> Iterator[pafs.FileSystem]:
    """An S3 server on 127.0.0.1 (moto) with one bucket, and a pyarrow file system on it."""
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
        fs.create_dir(BUCKET)
        yield fs
    finally:
        server.stop()


def send(source: Path, fs: pafs.FileSystem, dest: str) -> None:
    """What Ray Tune does with a checkpoint folder, and the mirror with the tables: every file, whole."""
    fs.create_dir(dest)
    pafs.copy_files(str(source), dest, destination_filesystem=fs)


def epoch_seconds() -> dict[str, float]:
    """Per-epoch seconds of each task at the full preset, at the measured H200 rates."""
    from bench.studycost import task_costs

    measured = json.loads(MEASURED.read_text())
    return {c.task: c.epoch_seconds for c in task_costs("full", measured)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__.splitlines()[0])
    p.add_argument("--networks", choices=("smoke", "full", "both"), default="both")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed (default 3)")
    p.add_argument("--trials", type=int, default=64, help="trials of the study whose tables are written")
    p.add_argument("--epochs", type=int, default=50, help="epochs per trial in those tables")
    args = p.parse_args(argv)
    per_epoch = epoch_seconds()
    rounded = {k: round(v) for k, v in per_epoch.items()}
    print(f"per-epoch time at the measured H200 rates (full preset), the share's base: {json.dumps(rounded)} s")
    print(f"{'what':<46}{'MB':>9}{'local s':>10}{'S3 s':>9}{'S3/local':>10}{'S3 share of an epoch':>22}")
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp, s3_store() as s3:
        root, local = Path(tmp), pafs.LocalFileSystem()
        rows: list[tuple[str, str, Path]] = []
        for label, task, base, depth in networks(args.networks):
            folder = write_checkpoint(task, base, depth, root / f"{task}-{base}-{depth}")
            rows.append((f"checkpoint {task} {label} (b{base} d{depth})", task, folder))
        tables = write_tables(root / "study", args.trials, args.epochs)
        rows.append((f"tables ({args.trials} trials x {args.epochs} epochs)", "binary", tables))
        for n, (what, task, folder) in enumerate(rows):
            local_s = timed(functools.partial(send, folder, local, str(root / "local" / str(n))), args.repeat)
            s3_s = timed(functools.partial(send, folder, s3, f"{BUCKET}/{n}"), args.repeat)
            mb = folder_bytes(folder) / 1e6
            share = s3_s / per_epoch[task]
            print(f"{what:<46}{mb:>9.2f}{local_s:>10.3f}{s3_s:>9.3f}{s3_s / local_s:>10.1f}{share:>21.2%}")
    print("S3: moto on 127.0.0.1 (this machine's loopback and CPU); a cloud store is bounded by its bandwidth instead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
