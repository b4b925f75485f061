"""Written files carry exactly the pinned schema; pandas never sees object-typed numbers."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.hparams import param_types
from models.metric_names import METRICS, VAL_METRICS
from results.schema import (
    EPOCHS_SCHEMA,
    PARAM_ARROW_TYPES,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    STATUSES,
    TIMESTAMP,
    param_columns,
    trials_schema,
)
from tests.assets import make_golden

TRIALS_SCHEMA = trials_schema(param_columns(make_golden.PARAM_TYPES))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return make_golden.write(tmp_path_factory.mktemp("study") / "tables")


def test_schemas_hold_every_metric_and_param():
    assert EPOCHS_SCHEMA.names[:4] == ["study", "task", "trial_id", "epoch"]
    for name in METRICS:
        assert EPOCHS_SCHEMA.field(name).type == pa.float64()
    for name in VAL_METRICS:
        assert TRIALS_SCHEMA.field(f"best_{name}").type == pa.float64()
    # every hyperparameter of the trial record has a typed column
    current = trials_schema(param_columns(param_types()))
    for name, typ in param_types().items():
        assert current.field(f"param_{name}").type == PARAM_ARROW_TYPES[typ]
    for schema in (EPOCHS_SCHEMA, TRIALS_SCHEMA, current):
        assert len(set(schema.names)) == len(schema.names)
        assert schema.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
        for field in schema:
            assert not pa.types.is_large_string(field.type)
            if pa.types.is_timestamp(field.type):
                assert field.type == TIMESTAMP


@pytest.mark.parametrize("which", ["trials", "epochs"])
def test_written_files_have_exactly_the_schema(tables, which):
    path = tables.trials_path if which == "trials" else tables.epochs_path
    expected = TRIALS_SCHEMA if which == "trials" else EPOCHS_SCHEMA
    with pq.ParquetFile(path) as pf:
        written = pf.schema_arrow
        codecs = {pf.metadata.row_group(0).column(i).compression for i in range(pf.metadata.num_columns)}
    assert written.names == expected.names
    assert [f.type for f in written] == [f.type for f in expected]
    assert written.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
    assert codecs == {"ZSTD"}


@pytest.mark.parametrize("which", ["trials", "epochs"])
def test_plain_read_parquet_never_gives_object_numbers(tables, which):
    path = tables.trials_path if which == "trials" else tables.epochs_path
    df = pd.read_parquet(path)
    schema = TRIALS_SCHEMA if which == "trials" else EPOCHS_SCHEMA
    for field in schema:
        if pa.types.is_floating(field.type) or pa.types.is_integer(field.type):
            assert pd.api.types.is_numeric_dtype(df[field.name]), field.name
        if pa.types.is_timestamp(field.type):
            assert str(df[field.name].dt.tz) == "UTC"


def test_statuses_and_version_column(tables):
    df = pd.read_parquet(tables.trials_path)
    assert set(df["status"]) <= set(STATUSES)
    assert set(df["status"]) == set(STATUSES) - {"interrupted"}  # the golden study uses all of the first release
    assert (df["schema_version"] == SCHEMA_VERSION.major).all()
    assert df["epochs_completed"].dtype == "int32"
