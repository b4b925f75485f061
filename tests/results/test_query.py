"""Loaders reject damaged or foreign tables; queries answer per task; golden v1 files stay readable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results import query
from results.query import TableError
from results.schema import EPOCHS_SCHEMA, SCHEMA_VERSION_KEY, STATUSES, param_columns, trials_schema
from results.tables import StudyTables
from tests.assets import make_golden

GOLDEN = Path(__file__).resolve().parents[1] / "assets" / "v1"
TRIALS_SCHEMA = trials_schema(param_columns(make_golden.PARAM_TYPES))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("golden")
    make_golden.write(study_dir / "tables")
    return study_dir


def _big_epochs(n: int = 20_000) -> pa.Table:
    """An epochs table with large incompressible float columns, so the middle of the file is page data."""
    rng = np.random.default_rng(0)
    cols = {}
    for field in EPOCHS_SCHEMA:
        if pa.types.is_floating(field.type):
            cols[field.name] = pa.array(rng.random(n))
        elif field.name == "epoch":
            cols[field.name] = pa.array(np.arange(1, n + 1, dtype=np.int32))
        elif pa.types.is_timestamp(field.type):
            cols[field.name] = pa.array(np.zeros(n, dtype="datetime64[us]")).cast(field.type)
        else:
            cols[field.name] = pa.array(["x"] * n, pa.string())
    return pa.table(cols, schema=EPOCHS_SCHEMA)


def _expect_table_error(study_dir: Path, loader, match: str) -> TableError:
    path = (study_dir / "tables" / ("epochs.parquet" if loader is query.load_epochs else "trials.parquet")).absolute()
    with pytest.raises(TableError) as info:
        loader(study_dir)
    message = str(info.value)
    assert str(path) in message
    assert info.value.path == path
    assert match in message
    assert "Traceback" not in message
    return info.value


@pytest.mark.parametrize("damage", ["empty", "four_bytes", "half"])
def test_truncated_tables_raise(study, tmp_path, damage):
    shutil.copytree(study, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "tables" / "trials.parquet"
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "four_bytes": data[:4], "half": data[: len(data) // 2]}[damage])
    _expect_table_error(tmp_path, query.load_trials, "empty" if damage == "empty" else "damaged")


@pytest.mark.parametrize("compression", ["zstd", "snappy"])
def test_flipped_byte_in_data_page_is_detected(tmp_path, compression):
    path = tmp_path / "tables" / "epochs.parquet"
    path.parent.mkdir()
    pq.write_table(_big_epochs(), path, compression=compression, write_page_checksum=True)
    assert len(query.load_epochs(tmp_path)) == 20_000  # intact file reads
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _expect_table_error(tmp_path, query.load_epochs, "CRC")


def test_foreign_parquet_file(tmp_path):
    (tmp_path / "tables").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "tables" / "trials.parquet")
    _expect_table_error(tmp_path, query.load_trials, "not a welllog-study table")


def test_not_parquet_at_all(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "epochs.parquet").write_text("study,task\n" * 100)
    _expect_table_error(tmp_path, query.load_epochs, "damaged or not a Parquet file")


def test_missing_table(tmp_path):
    _expect_table_error(tmp_path, query.load_trials, "no such table")


def _rewrite(study: Path, tmp_path: Path, change) -> None:
    shutil.copytree(study, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "tables" / "trials.parquet"
    table = change(pq.read_table(path))
    pq.write_table(table.replace_schema_metadata(TRIALS_SCHEMA.metadata), path, write_page_checksum=True)


def test_unknown_column(study, tmp_path):
    _rewrite(study, tmp_path, lambda t: t.append_column("momentum", pa.array([0.9] * len(t))))
    _expect_table_error(tmp_path, query.load_trials, "unknown column 'momentum'")


def test_retyped_column(study, tmp_path):
    def retype(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("epochs_completed")
        return t.set_column(i, "epochs_completed", t.column(i).cast(pa.float64()))

    _rewrite(study, tmp_path, retype)
    _expect_table_error(tmp_path, query.load_trials, "column 'epochs_completed' has type double, expected int32")


def test_hyperparameter_columns_are_an_open_typed_set(study, tmp_path):
    # A parameter this version does not list reads fine (a newer loss catalogue); its type must be a param type.
    _rewrite(study, tmp_path, lambda t: t.append_column("param_momentum", pa.array([0.9] * len(t))))
    assert query.load_trials(tmp_path)["param_momentum"].tolist() == [0.9] * 7
    _rewrite(study, tmp_path, lambda t: t.append_column("param_when", pa.array([b"x"] * len(t), pa.binary())))
    _expect_table_error(tmp_path, query.load_trials, "hyperparameter column 'param_when' has type binary")


def test_missing_column(study, tmp_path):
    _rewrite(study, tmp_path, lambda t: t.drop_columns(["node"]))
    _expect_table_error(tmp_path, query.load_trials, "missing column 'node'")


@pytest.mark.parametrize(("version", "match"), [(b"2", "schema version 2.0 is newer"), (b"1.x", "not a version")])
def test_newer_or_garbled_schema_version(study, tmp_path, version, match):
    shutil.copytree(study, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "tables" / "trials.parquet"
    table = pq.read_table(path).replace_schema_metadata({SCHEMA_VERSION_KEY: version})
    pq.write_table(table, path)
    _expect_table_error(tmp_path, query.load_trials, match)


def test_writer_refuses_damaged_table_and_leaves_it(study, tmp_path):
    shutil.copytree(study, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "tables" / "epochs.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TableError):
        StudyTables(tmp_path / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    assert path.stat().st_size == 100


def test_loaded_dtypes(study):
    trials, epochs = query.load_trials(study), query.load_epochs(study)
    for df, schema in ((trials, TRIALS_SCHEMA), (epochs, EPOCHS_SCHEMA)):
        assert list(df.columns) == schema.names
        for field in schema:
            dtype = df[field.name].dtype
            assert dtype is not np.dtype(object), field.name
            if pa.types.is_string(field.type):
                assert isinstance(dtype, pd.StringDtype), field.name
            elif pa.types.is_floating(field.type) or pa.types.is_integer(field.type):
                assert pd.api.types.is_numeric_dtype(dtype), field.name
    assert str(trials["best_epoch"].dtype) == "Int32"


def test_best_trials_by_objective_excludes_error_and_running(study):
    best = query.best_trials(study)
    assert best["task"].tolist() == ["binary", "multiclass"]
    # b2 (error) and b3 (running) have higher dice than b0 but must not win
    assert best["trial_id"].tolist() == ["b0", "m2"]
    assert best["metric"].tolist() == ["val_dice_fg"] * 2
    assert best["score"].tolist() == best["objective_best"].tolist()


def test_best_trials_min_and_max_metric_and_n(study):
    best = query.best_trials(study, metric="val_dice_fg", n=3)
    assert best["trial_id"].tolist() == ["b0", "b1", "m2", "m0", "m1"]
    assert best["rank"].tolist() == [1, 2, 1, 2, 3]
    # val_loss (min): 6-epoch trials bottom at epoch 5 (1.2/5); b1 ran 3 epochs (0.4), m1 2 (0.6)
    low = query.best_trials(study, metric="val_loss", n=2)
    assert low.groupby("task")["score"].apply(list).to_dict() == {
        "binary": [pytest.approx(0.24), pytest.approx(0.4)],
        "multiclass": [pytest.approx(0.24), pytest.approx(0.24)],
    }
    assert low["trial_id"].tolist() == ["b0", "b1", "m0", "m2"]
    # a per-class metric comes from the epochs table; binary trials have no class 2
    c2 = query.best_trials(study, metric="val_dice_c2")
    assert c2["trial_id"].tolist() == ["m2"]
    with pytest.raises(ValueError, match="unknown metric"):
        query.best_trials(study, metric="accuracy")


def test_learning_curves(study):
    curves = query.learning_curves(study)
    assert sorted(curves) == ["binary", "multiclass"]
    binary = curves["binary"]
    assert list(binary.columns) == ["b0", "b1", "b2", "b3"]
    assert binary.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert binary["b1"].isna().tolist() == [False] * 3 + [True] * 3
    assert binary.loc[2, "b0"] == pytest.approx(0.8 * 0.75)
    assert curves["multiclass"]["m1"].notna().sum() == 2


def test_early_stopping_savings(study):
    savings = query.early_stopping_savings(study)
    binary, multi = savings.loc["binary"], savings.loc["multiclass"]
    # b1: stopped at 3 of 6, epoch seconds 11, 12, 13 -> 3 * 12 s saved
    assert (binary["stopped_early"], binary["epochs_saved"], binary["seconds_saved"]) == (1, 3, 36.0)
    # m1: stopped at 2 of 6, epoch seconds 11, 12 -> 4 * 11.5 s saved
    assert (multi["stopped_early"], multi["epochs_saved"], multi["seconds_saved"]) == (1, 4, 46.0)
    assert binary["epochs_budget"] == 24
    assert binary["fraction_saved"] == pytest.approx(3 / 24)
    assert multi["fraction_saved"] == pytest.approx(4 / 18)


def test_status_counts(study):
    counts = query.status_counts(study)
    assert counts.columns.tolist() == list(STATUSES)  # every status, also those no trial holds
    assert counts.loc["binary"].tolist() == [1, 1, 1, 1, 0]
    assert counts.loc["multiclass"].tolist() == [2, 1, 0, 0, 0]


def test_golden_v1_files_stay_readable(tmp_path, study):
    shutil.copytree(GOLDEN, tmp_path / "tables")
    for loader, name in ((query.load_trials, "trials.parquet"), (query.load_epochs, "epochs.parquet")):
        golden, fresh = loader(tmp_path), loader(study)
        # the committed files equal what make_golden writes today, in the columns they have (epoch timestamps
        # are fixed in the records); the columns of later versions are null in them
        v1 = pq.read_schema(GOLDEN / name).names
        pd.testing.assert_frame_equal(golden[v1], fresh[v1])
        assert golden.drop(columns=v1).isna().all().all()
    assert query.best_trials(tmp_path)["trial_id"].tolist() == ["b0", "m2"]
