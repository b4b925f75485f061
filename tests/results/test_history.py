"""A trial's runs on the record (schema 1.3): the node of each run and why each restart came, written by the real
``StudyTables``, read back, and said by ``results.show``, the report and the closing lines of ``study.run``.
Studies written before 1.3 have no such record: they read with nulls and say nothing about restarts."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from ray.exceptions import ActorDiedError, NodeDiedError, RayActorError, RayTaskError, WorkerCrashedError

from datamodules.cli import Exit
from results import history, report, show
from results.query import load_trials
from results.schema import NODE_LOST, RESUMED, RETRIED, WORKER_DIED
from results.tables import StudyTables
from study import outcome
from study.restarts import node_name, preempted, reason
from tests.assets import make_golden
from tests.helpers.report_page import parse
from tests.helpers.study import saved_study

ASSETS = Path(__file__).resolve().parents[1] / "assets"
A, B = node_name("vm", "aaaa1111aaaa2222"), node_name("vm", "bbbb1111bbbb2222")


@pytest.mark.parametrize("version", ["v1", "v1.1", "v1.2"])
def test_an_older_study_reads_with_no_runs_recorded_and_records_them_once_resumed(tmp_path, version):
    shutil.copytree(ASSETS / version, tmp_path / "tables")
    trials = load_trials(tmp_path)
    for column in ("nodes", "restarts", "restart_reasons"):
        assert trials[column].isna().all(), column  # not recorded then: null, not a guess
    assert history.restarts(trials) == [] and history.lines(trials) == []
    assert "restarts:" not in show.summary(tmp_path)

    tables = StudyTables(tmp_path / "tables", make_golden.STUDY, make_golden.OBJECTIVE, make_golden.PARAM_TYPES)
    assert tables.history("b3") == (["node-1"], [])  # the running trial's record starts from its last node
    now = datetime.now(timezone.utc)
    tables.record_trial(
        "b3", "binary", status="running", params={}, epoch_budget=6, devices=0.5, started_at=now, finished_at=None,
        node="node-9", checkpoint_path=None, nodes=["node-1", "node-9"], restart_reasons=[RESUMED],
    )  # fmt: skip
    after = load_trials(tmp_path).set_index("trial_id")
    assert list(after.loc["b3", "nodes"]) == ["node-1", "node-9"] and after.loc["b3", "restarts"] == 1
    assert after.drop(index="b3")["nodes"].isna().all()  # the other rows stay as their version wrote them
    assert (
        history.lines(after.reset_index())[-1]
        == "    moved from node node-1 to node node-9 after the study was resumed"
    )


def test_a_restart_reason_the_schema_does_not_know_is_refused(tmp_path):
    tables = StudyTables(tmp_path / "tables", "s", "val_dice_fg")
    with pytest.raises(ValueError, match="unknown restart reasons"):
        tables.record_trial(
            "t", "binary", status="running", params={}, epoch_budget=2, devices=1.0, started_at=None,
            finished_at=None, node=A, checkpoint_path=None, restart_reasons=["cosmic ray"],
        )  # fmt: skip
    assert not tables.trials_path.exists()


def _moved_study(tmp_path: Path):
    """A finished study of two trials as the driver records it: trial `a` lost its node in epoch 3 and finished
    on another, trial `b` ran once."""
    cfg = saved_study(tmp_path, num_samples=2)
    tables = StudyTables(cfg.tables_dir, cfg.name, cfg.metric)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for tid, nodes, reasons in (("a", [A, B], [NODE_LOST]), ("b", [B], [])):
        for epoch in range(1, cfg.epochs + 1):
            values = {"val_dice_fg": 0.1 * epoch, "val_loss": 1.0 / epoch, "epoch_seconds": 2.0}
            tables.record_epoch(tid, "binary", epoch, {**values, "timestamp": t0 + timedelta(seconds=epoch)})
        tables.record_trial(
            tid, "binary", status="completed", params={"lr": 1e-3, "loss": "bce"}, epoch_budget=cfg.epochs,
            devices=1.0, started_at=t0, finished_at=t0 + timedelta(minutes=1), node=nodes[-1], checkpoint_path=None,
            nodes=nodes, restart_reasons=reasons,
        )  # fmt: skip
    return cfg


MOVED = f"binary trial a moved from node {A} to node {B} after the node was lost"


def test_a_moved_trial_is_said_by_the_closing_lines_and_not_called_errored(tmp_path, capsys):
    cfg = _moved_study(tmp_path)
    assert outcome.summary(cfg) == Exit.OK
    out = capsys.readouterr().out
    assert f"  {MOVED}\n" in out
    assert "{'completed': 2}" in out and "ERROR" not in out


def test_show_lists_each_trial_that_restarted_with_its_nodes(tmp_path):
    text = show.summary(_moved_study(tmp_path).study_dir)
    part = text.split("\nrestarts: ")[1]
    assert part.startswith("1 of 2 trials")
    assert f"  binary trial a (completed): nodes {A}, {B}; restarts 1\n" in part
    assert f"    moved from node {A} to node {B} after the node was lost" in part
    assert "trial b" not in part  # it ran once, on one node


def test_the_report_has_a_restarts_section_for_a_task_whose_trial_moved(tmp_path):
    page = parse(report.write_report(_moved_study(tmp_path).study_dir))
    text = page.sections["binary-restarts"].text
    assert f"{A}, {B}" in text and f"moved from node {A} to node {B} after the node was lost" in text
    assert "multiclass-restarts" not in page.sections


@pytest.mark.parametrize(
    ("exc", "node", "dead", "dead_at_start", "why"),
    [
        (ActorDiedError(), A, {"aaaa1111aaaa2222ffff"}, set(), NODE_LOST),  # its node is gone from Ray's table
        (ActorDiedError(), A, {"bbbb1111bbbb2222ffff"}, set(), WORKER_DIED),  # another node went; its stayed
        (ActorDiedError(), None, {"cccc"}, set(), NODE_LOST),  # no epoch reported: a node died during the run
        (ActorDiedError(), None, {"cccc"}, {"cccc"}, WORKER_DIED),  # ... that one was dead before it started
        (WorkerCrashedError(), A, set(), set(), WORKER_DIED),
        (RayActorError(preempted=True), A, set(), set(), NODE_LOST),  # Ray's drained-for-preemption node
        (NodeDiedError("gone"), None, set(), set(), NODE_LOST),
        (RayTaskError("train", "Traceback ...", ValueError("bad")), A, {"aaaa1111aaaa2222ffff"}, set(), RETRIED),
        (None, A, set(), set(), RETRIED),  # Ray kept only the text of the error
    ],
)
def test_why_a_run_ended_comes_from_rays_exception_and_its_node_table(exc, node, dead, dead_at_start, why):
    assert reason(exc, node, frozenset(dead), frozenset(dead_at_start)) == why


def test_only_a_node_drained_for_preemption_is_one_ray_itself_does_not_count():
    assert preempted(RayActorError(preempted=True))
    assert preempted(RayTaskError("train", "Traceback ...", RayActorError(preempted=True)))
    assert not preempted(ActorDiedError()) and not preempted(NodeDiedError("gone")) and not preempted(None)
