"""``deploy/slurm/study.sbatch``, the real script run by bash with stand-ins for srun and scontrol: a Ray head and a
worker started with real ``ray start`` on two "nodes" (both this machine), the study on them with ``--address``, then
SIGTERM to the batch shell as ``--signal=B:TERM`` sends it: exit 143 from the driver, ``scontrol requeue``, and the
requeued run continues the study with ``--resume``. Nothing of Ray outlives the job."""

from __future__ import annotations

import signal
import time

import pytest

from results.query import load_trials
from tests.helpers.driver import progress
from tests.helpers.slurm import JOB_ID, NODES, SlurmJob
from tests.helpers.study import TINY, check_tables

pytestmark = pytest.mark.slow

STUDY = ["--task", "binary", "--num-samples", "2", "--max-concurrent", "2", *TINY]


@pytest.fixture
def job(tmp_path):
    job = SlurmJob(tmp_path / "home", tmp_path / "shared", "s")
    yield job
    job.close()


def ray_starts(job: SlurmJob) -> list[tuple[str, str]]:
    """(node, "head" or "worker") of each `ray start` the script ran through srun, by node."""
    starts = [call.split() for call in job.calls("srun") if " ray start " in call]
    return sorted((call[0], "head" if "--head" in call else "worker") for call in starts)


@pytest.mark.timeout(900)  # two batch runs, each with its own Ray cluster: SlurmJob.wait bounds each
@pytest.mark.long(minutes=2)
def test_study_on_both_nodes_sigterm_requeues_and_the_requeued_job_resumes(job):
    job.start([*STUDY, "--epochs", "3"])
    study_dir = job.storage / "s"
    deadline = time.monotonic() + 400
    while len(progress(study_dir)) < 2 and job.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(progress(study_dir)) == 2 and job.proc.poll() is None, job.output[-4000:]  # both trials reported
    assert ray_starts(job) == [(NODES[0], "head"), (NODES[1], "worker")]
    assert "2 of 2 Ray nodes up" in job.output

    job.proc.send_signal(signal.SIGTERM)  # to the batch shell only, as --signal=B:TERM@300 sends it
    assert job.wait() == 143, job.output[-4000:]
    assert "interrupted (SIGTERM)" in job.output  # the driver's own line: the signal reached it
    assert job.calls("scontrol") == ["show hostnames node[1-2]", f"requeue {JOB_ID}"]
    trials = load_trials(study_dir)
    assert "running" not in set(trials["status"])
    assert len(set(trials["node"])) == 2, trials[["trial_id", "node"]]  # one trial on each node: 1 CPU each
    assert job.leftovers() == []

    code = job.run(STUDY, restart=1)  # the requeued job: the same script and arguments
    assert code == 0, job.output[-4000:]
    assert ": --resume (restart 1 of job" in job.output
    check_tables(study_dir, ("binary",), n_trials=2, epochs=3)
    assert job.calls("scontrol").count(f"requeue {JOB_ID}") == 1  # not again: the study has finished
    assert job.leftovers() == []
