"""What a local study plans with before Ray starts (``study.cluster.local_resources``): this process's CPUs and
the GPUs torch would see, counted without importing torch (NVML through Ray, ``CUDA_VISIBLE_DEVICES`` read as
torch reads it)."""

from __future__ import annotations

import os

import pytest
import torch
from ray._private.accelerators import NvidiaGPUAcceleratorManager

from study import cluster

VALUES = [None, "", "0", "1", "3", "0,1", "1,0", "0,3,1", "-1", "0,-1,1", "1gpu", " 1, 0", "a", "0,0", "1,0,1",
          "NoDevFiles", "GPU-0000", "GPU-0000,GPU-0001", "GPU-0000,GPU-0000", "GPU-0000,1",
          "MIG-0000,MIG-0000"]  # fmt: skip


@pytest.mark.parametrize("node_gpus", [0, 1, 2, 4])
@pytest.mark.parametrize("visible", VALUES)
def test_visible_gpus_reads_cuda_visible_devices_as_torch_does(monkeypatch, visible, node_gpus):
    """Against torch's own NVML count (``torch.cuda._device_count_nvml``) with NVML's answers stubbed."""
    if visible is None:
        monkeypatch.delenv(cluster.VISIBLE_GPUS_ENV, raising=False)
    else:
        monkeypatch.setenv(cluster.VISIBLE_GPUS_ENV, visible)
    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", lambda: node_gpus)
    monkeypatch.setattr(torch.cuda, "_raw_device_uuid_nvml", lambda: [f"GPU-{i:04d}" for i in range(node_gpus)])
    assert cluster.visible_gpus(visible, node_gpus) == torch.cuda._device_count_nvml()


@pytest.mark.parametrize(("visible", "gpus"), [("GPU-0009", 1), ("GPU-0001,GPU-0009", 2), ("MIG-a,MIG-b,x", 2)])
def test_visible_gpus_count_uuids_without_matching_them(visible, gpus):
    """Unlike torch, a UUID is not looked up among the node's GPUs: one that names none still counts (up to
    the node's count)."""
    assert cluster.visible_gpus(visible, 4) == gpus


@pytest.mark.parametrize(("visible", "gpus"), [(None, 2), ("", 0), ("1", 1), ("0,1", 2), ("0,1,2", 2), ("-1", 0)])
def test_local_resources_count_the_nodes_gpus_that_cuda_visible_devices_leaves(monkeypatch, visible, gpus):
    monkeypatch.setattr(NvidiaGPUAcceleratorManager, "get_current_node_num_accelerators", staticmethod(lambda: 2))
    if visible is None:
        monkeypatch.delenv(cluster.VISIBLE_GPUS_ENV, raising=False)
    else:
        monkeypatch.setenv(cluster.VISIBLE_GPUS_ENV, visible)
    assert cluster.local_resources() == {"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(gpus)}


def test_local_resources_see_the_gpus_torch_sees_here(monkeypatch):
    """The check on this machine as it is (0 GPUs without an NVIDIA driver or with a CPU build of torch; on a
    GPU machine, its GPUs), and with every GPU hidden."""
    assert cluster.local_resources()["GPU"] == torch.cuda.device_count()
    monkeypatch.setenv(cluster.VISIBLE_GPUS_ENV, "")
    assert cluster.local_resources()["GPU"] == 0
