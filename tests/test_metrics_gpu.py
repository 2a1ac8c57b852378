"""The metrics on CUDA tensors (KD-tree neighbours by default, or brute force on the GPU) agree with the CPU.
Skipped without a CUDA device; run on a GPU machine with ``pytest -m gpu``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subspace_hub.metrics import NeighborIndex, chamfer_and_normals, depth_metrics, reconstruction_metrics

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
RNG = np.random.default_rng(0)


def test_cuda_neighbors_match_the_kdtree():
    points, queries = torch.from_numpy(RNG.random((300_000, 3))), torch.from_numpy(RNG.random((50_000, 3)))
    d_cpu, i_cpu = NeighborIndex(points).query(queries, k=30)
    for backend in ("auto", "brute"):
        d_gpu, i_gpu = NeighborIndex(points.cuda(), backend).query(queries.cuda(), k=30)
        assert d_gpu.device.type == "cuda" and i_gpu.device.type == "cuda"
        torch.testing.assert_close(d_gpu.cpu(), d_cpu, atol=1e-12, rtol=0)
        assert torch.equal(i_gpu.cpu(), i_cpu)


def test_cuda_metrics_match_the_cpu():
    uv = RNG.random((100_000, 2))
    gt = np.c_[uv, 0.2 * np.sin(3 * uv[:, 0])]
    pred = gt + 0.003 * RNG.standard_normal(gt.shape)
    cpu = chamfer_and_normals(pred, gt)
    for backend in ("auto", "brute"):
        gpu = chamfer_and_normals(torch.from_numpy(pred).cuda(), torch.from_numpy(gt).cuda(), backend=backend)
        for key in cpu:
            assert gpu[key] == pytest.approx(cpu[key], abs=1e-9), (backend, key)
    depth = 1 + torch.rand(4, 64, 64, dtype=torch.float64)
    noisy = depth * 1.3 + 0.01 * torch.rand(4, 64, 64, dtype=torch.float64)
    assert depth_metrics(noisy.cuda(), depth.cuda(), align="scale") == pytest.approx(
        depth_metrics(noisy, depth, align="scale"), abs=1e-9
    )


def test_cuda_protocol_matches_the_cpu():
    s, h, w = 2, 48, 64
    depth = 2 + 0.1 * torch.rand(s, h, w, dtype=torch.float64)
    extrinsics = torch.eye(3, 4, dtype=torch.float64).repeat(s, 1, 1)
    extrinsics[1, 0, 3] = -0.1
    intrinsics = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]], dtype=torch.float64).repeat(s, 1, 1)
    gt = {"depth": depth, "extrinsics": extrinsics, "intrinsics": intrinsics}
    pred = {
        "depth": 1.5 * depth * (1 + 0.01 * torch.rand(s, h, w, dtype=torch.float64)),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
    }
    cpu = reconstruction_metrics(pred, gt, k=10)
    gpu = reconstruction_metrics({k: v.cuda() for k, v in pred.items()}, {k: v.cuda() for k, v in gt.items()}, k=10)
    for key in cpu:
        assert gpu[key] == pytest.approx(cpu[key], abs=1e-9), key
