"""Schema evolution: studies written by an older version stay readable and resumable.

The committed ``tests/assets/v1`` files are what the first release wrote (schema "1"). A simulated next minor
version (one new nullable column in each table) must read them, say which version it read, and, when a study
is resumed, upgrade its tables in place at the new version without losing or changing a row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results import query, schema, tables
from results.query import TableError, load_epochs, load_trials
from results.schema import EPOCHS_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SchemaVersion
from results.tables import StudyTables
from tests.assets import make_golden

GOLDEN = Path(__file__).resolve().parents[1] / "assets" / "v1"


@pytest.fixture
def v1_study(tmp_path) -> Path:
    shutil.copytree(GOLDEN, tmp_path / "study" / "tables")
    return tmp_path / "study"


@pytest.fixture
def next_minor(monkeypatch) -> SchemaVersion:
    """This code as the next minor version would be: one new nullable column in each table."""
    version = SchemaVersion(SCHEMA_VERSION.major, SCHEMA_VERSION.minor + 1)
    epochs = pa.schema(
        [*EPOCHS_SCHEMA, pa.field("val_new_metric", pa.float64())],
        metadata={SCHEMA_VERSION_KEY: str(version).encode()},
    )
    for module in (schema, query, tables):
        monkeypatch.setattr(module, "SCHEMA_VERSION", version, raising=False)
        monkeypatch.setattr(module, "EPOCHS_SCHEMA", epochs, raising=False)
    monkeypatch.setattr(schema, "_TRIALS_TAIL", [*schema._TRIALS_TAIL, pa.field("new_cost_seconds", pa.float64())])
    return version


def _version(path: Path) -> str:
    return pq.read_schema(path).metadata[SCHEMA_VERSION_KEY].decode()


def test_golden_v1_files_load_and_say_their_version(v1_study):
    assert _version(v1_study / "tables" / "trials.parquet") == "1"  # as the first release wrote it
    trials, epochs = load_trials(v1_study), load_epochs(v1_study)
    assert trials.attrs["schema_version"] == epochs.attrs["schema_version"] == "1.0"
    assert len(trials) == 7 and len(epochs) == 26


def test_next_minor_reads_v1_with_nulls_in_the_new_columns(v1_study, next_minor):
    trials, epochs = load_trials(v1_study), load_epochs(v1_study)
    assert trials.attrs["schema_version"] == "1.0"
    assert trials["new_cost_seconds"].isna().all()
    assert epochs["val_new_metric"].isna().all()
    assert query.best_trials(v1_study)["trial_id"].tolist() == ["b0", "m2"]  # the queries still answer
    assert _version(v1_study / "tables" / "trials.parquet") == "1"  # reading never writes


def test_resuming_a_v1_study_under_the_next_minor_upgrades_it_in_place(v1_study, next_minor):
    before = {name: loader(v1_study) for name, loader in (("trials", load_trials), ("epochs", load_epochs))}
    t = StudyTables(v1_study / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    assert t.upgraded_from == {"1.0"}
    for name in ("trials.parquet", "epochs.parquet"):
        assert _version(v1_study / "tables" / name) == str(next_minor)
    # the resumed study goes on: a running trial reports its next epoch with the new metric
    t.record_epoch("b3", "binary", 3, {**make_golden.epoch_values("binary", 0.95, 3), "val_new_metric": 0.5})
    after_trials, after_epochs = load_trials(v1_study), load_epochs(v1_study)
    assert after_trials.attrs["schema_version"] == str(next_minor)
    new_row = (after_epochs["trial_id"] == "b3") & (after_epochs["epoch"] == 3)
    pd.testing.assert_frame_equal(after_epochs[~new_row].reset_index(drop=True), before["epochs"])  # nothing lost
    kept = ["task", "status", "param_lr", "param_loss", "objective_best", "checkpoint_path"]
    pd.testing.assert_frame_equal(after_trials[kept].drop(index=3), before["trials"][kept].drop(index=3))
    assert len(after_epochs) == len(before["epochs"]) + 1
    assert after_epochs.loc[after_epochs["epoch"] == 3, "val_new_metric"].dropna().tolist() == [0.5]
    assert after_trials.set_index("trial_id").loc["b3", "epochs_completed"] == 3
    assert after_trials["new_cost_seconds"].isna().all()


def test_a_study_written_by_a_newer_version_is_refused_not_rewritten(v1_study, next_minor, monkeypatch):
    StudyTables(v1_study / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    monkeypatch.undo()  # back to this version, with a study the next one has written
    path = v1_study / "tables" / "epochs.parquet"
    data = path.read_bytes()
    with pytest.raises(TableError, match="newer than this welllog-study reads"):
        StudyTables(v1_study / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    assert path.read_bytes() == data


def test_a_hyperparameter_the_writer_does_not_know_is_refused(v1_study):
    with pytest.raises(TableError, match="param_tversky_beta' is unknown"):
        StudyTables(v1_study / "tables", "golden", "val_dice_fg", {"lr": float, "depth": int, "loss": str,
                    "weight_decay": float, "base_channels": int, "lr_schedule": str, "pos_weight": float,
                    "class_weighting": str, "dice_weight": float, "focal_gamma": float, "focal_alpha": float,
                    "tversky_alpha": float})  # fmt: skip


def test_a_major_version_needs_its_migration(v1_study, monkeypatch):
    version = SchemaVersion(SCHEMA_VERSION.major + 1, 0)
    for module in (schema, query, tables):
        monkeypatch.setattr(module, "SCHEMA_VERSION", version, raising=False)
    with pytest.raises(TableError, match=f"no migration to {version}"):
        load_trials(v1_study)

    def rename_node(table: pa.Table, name: str) -> pa.Table:  # e.g. 2.0 renamed a column
        return table

    monkeypatch.setitem(query.MIGRATIONS, SCHEMA_VERSION.major, rename_node)
    assert load_trials(v1_study).attrs["schema_version"] == "1.0"


ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_the_current_version_has_golden_files_with_exactly_its_columns():
    """A column added without a version bump (or a bump without golden files) fails here."""
    current = ASSETS / f"v{SCHEMA_VERSION}"
    assert current.is_dir(), f"run tests/assets/make_golden.py to write {current}"
    expected = {
        "epochs.parquet": EPOCHS_SCHEMA.names,
        "trials.parquet": schema.trials_schema(schema.param_columns(make_golden.PARAM_TYPES)).names,
    }
    for name, names in expected.items():
        written = pq.read_schema(current / name)
        assert written.names == names, name
        assert written.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()


@pytest.mark.parametrize("version_dir", sorted(p.name for p in ASSETS.glob("v*") if p.is_dir()))
def test_every_golden_version_reads_and_resumes(tmp_path, version_dir):
    shutil.copytree(ASSETS / version_dir, tmp_path / "tables")
    trials = load_trials(tmp_path)
    assert trials.attrs["schema_version"] == str(SchemaVersion.parse(version_dir[1:]))
    assert query.best_trials(tmp_path)["trial_id"].tolist() == ["b0", "m2"]
    StudyTables(tmp_path / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    assert load_epochs(tmp_path).attrs["schema_version"] == str(SCHEMA_VERSION)  # upgraded in place
    assert len(load_trials(tmp_path)) == len(trials)
