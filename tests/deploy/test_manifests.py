"""The recipes of deploy/ against the README's "Run on a cluster": the RayJob runs exactly the command the README
documents (flags study.run has today, the study in S3), gives its workers GPUs and every pod the Secret's S3
credentials; the image holds every package; the Slurm script parses and asks for SIGTERM and requeueing."""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from study.request import build_parser
from tests.helpers.driver import REPO
from tests.helpers.slurm import SCRIPT

README = REPO / "README.md"
MANIFEST = REPO / "deploy" / "kuberay" / "rayjob.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")  # AWS_ENDPOINT_URL: optional


def readme_subsection(title: str) -> str:
    """The text of ``### title`` under ``## Run on a cluster``."""
    section = README.read_text().split("\n## Run on a cluster\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0]


def documented_runs(text: str) -> list[str]:
    """Every ``python -m study.run`` line of the bash blocks in ``text``."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("python -m study.run")]


def rayjob() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_rayjob_runs_the_command_the_readme_documents():
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    entrypoint = job["spec"]["entrypoint"].strip()
    assert documented_runs(readme_subsection("Kubernetes (KubeRay)")) == [entrypoint]
    argv = shlex.split(entrypoint)
    assert argv[:3] == ["python", "-m", "study.run"]
    args = build_parser().parse_args(argv[3:])  # the flags as study.run has them today
    assert args.address == "auto" and args.storage.startswith("s3://") and args.name and not args.resume
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["backoffLimit"] == 0  # a retry without --resume would be refused: the README says so
    assert job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"


def test_rayjob_gpu_workers_and_the_secret_in_every_pod():
    cluster = rayjob()["spec"]["rayClusterSpec"]
    groups = cluster["workerGroupSpecs"]
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in groups)]
    for group in groups:
        (worker,) = group["template"]["spec"]["containers"]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1, group["groupName"]
    for pod in pods:
        for container in pod["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for name in SECRET_ENV:
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == ("welllog-s3", name) and not ref.get("optional"), container
            assert env["AWS_ENDPOINT_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_the_image_holds_every_package():
    found = re.search(r"^include = \[(.*)\]", (REPO / "pyproject.toml").read_text(), flags=re.M)
    assert found
    packages = {p.strip().strip('"').rstrip("*") for p in found.group(1).split(",")}
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), flags=re.M))
    assert copied == packages


def test_slurm_script_parses_and_asks_for_sigterm_and_requeue():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert re.search(r"^#SBATCH --signal=B:TERM@\d+$", text, flags=re.M)
    assert re.search(r"^#SBATCH --requeue$", text, flags=re.M)
    assert f"sbatch {SCRIPT.relative_to(REPO)}" in readme_subsection("Slurm")
