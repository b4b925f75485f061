"""results.store: locations (paths and object store URIs), and the readers on a study in a real S3 server
(moto on 127.0.0.1): the table loaders, results.show and results.report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from results.query import TableError, load_epochs, load_trials
from results.report import main as report_main
from results.show import main as show_main
from results.store import (
    checkpoint_location,
    child,
    download,
    is_uri,
    local_view,
    parent_and_name,
    resolve,
    shown,
)
from tests.assets import make_golden
from tests.helpers.study import saved_study

URI = "s3://bucket/studies?endpoint_override=127.0.0.1:9000&scheme=http"


def test_paths_and_uris_are_told_apart():
    assert is_uri(URI) and is_uri("gs://b/p")
    assert not is_uri("runs") and not is_uri("/abs/runs") and not is_uri("file:///abs/runs")


def test_child_keeps_the_query_at_the_end():
    assert child(URI, "my-study", "tables") == (
        "s3://bucket/studies/my-study/tables?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert child("runs", "my-study") == str(Path("runs", "my-study"))
    assert parent_and_name(child(URI, "my-study")) == (URI, "my-study")


def test_credentials_in_a_uri_are_never_shown():
    secret = "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/studies?region=eu-west-1"
    assert shown(secret) == "s3://bucket/studies?region=eu-west-1"
    assert "wJalr" not in shown(secret)


def test_a_checkpoint_recorded_by_ray_is_found_under_the_study_uri():
    study = child(URI, "s1")
    recorded = "bucket/studies/s1/binary/trial_ab/checkpoint_000003"
    assert checkpoint_location(study, recorded) == (
        "s3://bucket/studies/s1/binary/trial_ab/checkpoint_000003?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert checkpoint_location("/local/runs/s1", "/local/runs/s1/binary/x") == "/local/runs/s1/binary/x"


@pytest.fixture
def remote_study(s3, tmp_path):
    """A golden study (plan and tables) uploaded to the S3 server; returns its URI."""
    storage = s3.uri(f"stores/{tmp_path.name}")
    cfg = saved_study(tmp_path, remote=storage)  # as the driver saves the plan of a study in object storage
    make_golden.write(cfg.tables_dir)
    ckpt = cfg.study_dir / "binary" / "trial_b0" / "checkpoint_000005" / "checkpoint.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not read by a view")
    fs, root = resolve(storage)
    pafs.copy_files(str(cfg.study_dir), f"{root}/{cfg.name}", destination_filesystem=fs)
    return child(storage, cfg.name)


def test_the_loaders_read_a_study_in_object_storage(remote_study, tmp_path):
    trials, epochs = load_trials(remote_study), load_epochs(remote_study)
    assert set(trials["task"]) == {"binary", "multiclass"} and len(epochs) > len(trials)
    make_golden.write(tmp_path / "local" / "tables")
    pd.testing.assert_frame_equal(trials, load_trials(tmp_path / "local"), check_like=True)


def test_plain_pandas_reads_a_table_in_object_storage_as_the_readme_shows(remote_study):
    s3fs, path = pafs.FileSystem.from_uri(child(remote_study, "tables", "trials.parquet"))
    raw = pd.read_parquet(path, filesystem=s3fs)
    assert sorted(raw["trial_id"]) == sorted(load_trials(remote_study)["trial_id"])


def test_a_missing_table_in_object_storage_is_a_table_error(s3):
    with pytest.raises(TableError, match="no such table"):
        load_trials(child(s3.uri("nowhere"), "none"))


def test_a_local_view_leaves_the_checkpoints_in_the_store(remote_study):
    with local_view(remote_study) as view:
        assert (view / "study.json").is_file() and (view / "tables" / "trials.parquet").is_file()
        assert not list(view.rglob("checkpoint.ckpt"))
        kept = view
    assert not kept.exists()


def test_show_summarises_and_lists_studies_in_object_storage(remote_study, capsys):
    assert show_main([remote_study]) == 0
    out = capsys.readouterr().out
    assert "best binary trial: b0 (completed)" in out
    assert shown(remote_study) in out
    storage, name = parent_and_name(remote_study)
    assert show_main([storage]) == 0
    listing = capsys.readouterr().out
    assert f"1 study in {shown(storage)}" in listing and f"  {name}:" in listing
    assert f"python -m results.show {child(storage, name)}" in listing


def test_show_of_nothing_in_object_storage_is_one_line_exit_2(s3, capsys):
    assert show_main([s3.uri("empty-prefix")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "holds no study" in err


def test_report_of_a_study_in_object_storage_is_written_beside_its_tables(remote_study, tmp_path, capsys):
    assert report_main([remote_study]) == 0
    assert "report.html" in capsys.readouterr().out
    got = tmp_path / "fetched"
    download(remote_study, got)
    page = (got / "report.html").read_text()
    assert "Study x" in page
    assert f"python -m results.show {shown(remote_study)}" in page.replace("&amp;", "&")
