"""The builtin metrics as :class:`~subspace_hub.MetricSpec` objects: how each is computed, which direction is
better, a conformance example, and how ``subspace-hub evaluate`` feeds it from a backbone's predictions and a
dataset sample (interchange keys, batch of 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from subspace_hub.errors import MetricInputError
from subspace_hub.specs import MetricExample, MetricSpec

CHAMFER_OUTPUTS = ("acc", "acc_median", "comp", "comp_median")
NC_OUTPUTS = ("nc1", "nc1_median", "nc2", "nc2_median", "nc", "nc_median")
DEPTH_OUTPUTS = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1", "delta_2", "delta_3")


# -- reading predictions and samples ---------------------------------------------------------------------------


def _item(source: Mapping[str, Any], key: str, what: str, metric: str) -> Any:
    value = source.get(key)
    if value is None:
        raise MetricInputError(
            f"metric {metric!r} needs {what}[{key!r}], which is missing (keys: {', '.join(sorted(source))})."
        )
    return value[0]


def _views(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source[k][0] for k in keys if source.get(k) is not None}


def _reconstruction_inputs(
    predictions: Mapping[str, Any], sample: Mapping[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    # Depth + predicted cameras first (the protocol; unprojected here in float64), a point map otherwise.
    prediction = _views(predictions, ("depth", "extrinsics", "intrinsics"))
    if len(prediction) < 3:
        prediction = _views(predictions, ("world_points",))
    if not prediction:
        raise MetricInputError(
            "metric 'reconstruction' needs predicted world_points, or depth with extrinsics and intrinsics."
        )
    return prediction, _views(sample, ("depth", "extrinsics", "intrinsics", "mask")), {}


def _cloud_inputs(predictions: Mapping[str, Any], sample: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    from subspace_hub.metrics.reconstruction import align_reconstruction

    prediction, reference, _ = _reconstruction_inputs(predictions, sample)
    clouds = align_reconstruction(prediction, reference, alignment="none")
    return clouds.prediction, clouds.reference, {}


def _depth_inputs(
    predictions: Mapping[str, Any], sample: Mapping[str, Any], metric: str = "depth"
) -> tuple[Any, Any, dict[str, Any]]:
    gt = _item(sample, "depth", "sample", metric)
    pred = torch.as_tensor(_item(predictions, "depth", "predictions", metric))
    gt = torch.as_tensor(gt)
    if pred.shape[-2:] != gt.shape[-2:]:  # bilinear to the GT resolution, as the reference resizes predictions
        pred = F.interpolate(
            pred.reshape(-1, 1, *pred.shape[-2:]).float(),
            size=tuple(gt.shape[-2:]),
            mode="bilinear",
            align_corners=False,
        )
        pred = pred.reshape(*gt.shape)
    mask, intrinsics = sample.get("mask"), sample.get("intrinsics")
    # the reference cameras, for align="scale_translation" (ignored by the other alignments)
    return (
        pred,
        gt,
        {"mask": None if mask is None else mask[0], "intrinsics": None if intrinsics is None else intrinsics[0]},
    )


def _landmark_inputs(predictions: Mapping[str, Any], sample: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    visible = sample.get("visible")
    return (
        _item(predictions, "landmarks", "predictions", "mpjpe"),
        _item(sample, "landmarks", "sample", "mpjpe"),
        {"visible": None if visible is None else visible[0]},
    )


def _image_inputs(predictions: Mapping[str, Any], sample: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    return _item(predictions, "images", "predictions", "psnr"), _item(sample, "images", "sample", "psnr"), {}


# -- conformance examples ---------------------------------------------------------------------------------------


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _plane(n: int = 20) -> torch.Tensor:
    u, v = torch.meshgrid(
        torch.linspace(0, 1, n, dtype=torch.float64), torch.linspace(0, 1, n, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([u, v, 0.1 * u * v], dim=-1).reshape(-1, 3)


def _noisy(points: torch.Tensor, sigma: float) -> torch.Tensor:
    return points + sigma * torch.randn(points.shape, generator=_generator(1), dtype=points.dtype)


def _cloud_example() -> MetricExample:
    reference = _plane()
    return MetricExample(reference=reference, better=_noisy(reference, 0.002), worse=_noisy(reference, 0.02))


def _scene(depth_noise: float, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Two views of a gently curved surface 2 units in front of cameras 0.2 apart."""
    h = w = 12
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    depth = 2.0 + 0.2 * torch.sin(u / 3) * torch.cos(v / 4)
    depth = torch.stack([depth, depth.flip(1)])
    extrinsics = torch.zeros(2, 3, 4, dtype=torch.float64)
    extrinsics[:, :, :3] = torch.eye(3, dtype=torch.float64)
    extrinsics[1, 0, 3] = -0.2
    intrinsics = (
        torch.tensor([[10.0, 0, w / 2], [0, 10.0, h / 2], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3).clone()
    )
    noisy = depth * (1 + depth_noise * torch.randn(depth.shape, generator=_generator(1), dtype=torch.float64))
    return {"depth": scale * noisy, "extrinsics": extrinsics, "intrinsics": intrinsics}


def _reconstruction_example() -> MetricExample:
    reference = _scene(0.0)
    reference["mask"] = torch.ones(2, 12, 12, dtype=torch.bool)
    return MetricExample(reference=reference, better=_scene(0.001), worse=_scene(0.02), kwargs={"k": 8})


def _depth_example() -> MetricExample:
    reference = 1.0 + torch.rand(2, 16, 16, generator=_generator(), dtype=torch.float64)
    better = reference * (1 + 0.02 * torch.randn(reference.shape, generator=_generator(1), dtype=torch.float64))
    worse = reference * (1 + 0.3 * torch.randn(reference.shape, generator=_generator(2), dtype=torch.float64)).clamp(
        min=0.3
    )
    return MetricExample(reference=reference, better=better, worse=worse)


def _landmark_example() -> MetricExample:
    reference = torch.randn(4, 17, 3, generator=_generator(), dtype=torch.float64) * 100
    return MetricExample(reference=reference, better=_noisy(reference, 1.0), worse=_noisy(reference, 20.0))


def _image_example() -> MetricExample:
    reference = torch.rand(2, 3, 16, 16, generator=_generator(), dtype=torch.float64)
    return MetricExample(
        reference=reference, better=(reference + 0.01).clamp(0, 1), worse=(reference + 0.2).clamp(0, 1)
    )


# -- the specs --------------------------------------------------------------------------------------------------


def _with_pixel_count(name: str):
    """A single depth metric that also reports its ``valid_pixels``, so averages over scenes weight it by pixels
    exactly as the ``depth`` metric does."""
    from subspace_hub.metrics import depth

    function = getattr(depth, name)

    def compute(prediction: Any, reference: Any, mask: Any = None, **options: Any) -> dict[str, float]:
        _, _, valid = depth._inputs(prediction, reference, mask, options.get("max_depth"))
        return {name: function(prediction, reference, mask, **options), "valid_pixels": int(valid.sum())}

    compute.__name__ = name
    compute.__doc__ = function.__doc__
    return compute


def builtin_metrics() -> list[MetricSpec]:
    """Every metric the core registers."""
    from subspace_hub.metrics import depth, images, landmarks, pointcloud, reconstruction

    depth_direction = {name: name.startswith("delta") for name in DEPTH_OUTPUTS}
    specs = [
        MetricSpec(
            "chamfer",
            pointcloud.chamfer,
            False,
            outputs=CHAMFER_OUTPUTS,
            unit="GT units",
            description="accuracy (pred->GT) and completeness (GT->pred) nearest-neighbour distances, mean and median",
            example=_cloud_example,
            inputs=_cloud_inputs,
        ),
        MetricSpec(
            "normal_consistency",
            pointcloud.normal_consistency,
            True,
            outputs=NC_OUTPUTS,
            description="NC1/NC2/NC: |cos| between normals of nearest points (kNN-PCA normals, k=30)",
            example=_cloud_example,
            inputs=_cloud_inputs,
        ),
        MetricSpec(
            "reconstruction",
            reconstruction.reconstruction_metrics,
            {**dict.fromkeys(CHAMFER_OUTPUTS, False), **dict.fromkeys(NC_OUTPUTS, True)},
            outputs=CHAMFER_OUTPUTS + NC_OUTPUTS,
            unit="GT units (NC unitless)",
            description="the paper's protocol: depth+cameras -> points, Umeyama Sim(3), ICP, Acc/Comp/NC",
            example=_reconstruction_example,
            inputs=_reconstruction_inputs,
        ),
        MetricSpec(
            "depth",
            depth.depth_metrics,
            depth_direction,
            outputs=DEPTH_OUTPUTS,
            description="AbsRel, SqRel, RMSE, log-RMSE, delta<1.25^i after alignment (default per-frame median)",
            example=_depth_example,
            inputs=_depth_inputs,
        ),
    ]
    for name, doc in (
        ("abs_rel", "mean |p - g| / g after alignment"),
        ("sq_rel", "mean (p - g)^2 / g after alignment"),
        ("rmse", "root mean squared depth error after alignment"),
        ("log_rmse", "RMSE of log depths after alignment"),
        ("delta", "share of pixels with max(p/g, g/p) < threshold (default 1.25) after alignment"),
    ):
        specs.append(
            MetricSpec(
                name,
                _with_pixel_count(name),
                name == "delta",
                outputs=(name,),
                description=doc,
                unit="GT units" if name == "rmse" else "",
                example=_depth_example,
                inputs=_depth_inputs,
            )
        )
    specs += [
        MetricSpec(
            "mpjpe",
            landmarks.mpjpe,
            False,
            description="mean per-joint position error",
            unit="landmark units (mm)",
            example=_landmark_example,
            inputs=_landmark_inputs,
        ),
        MetricSpec(
            "pa_mpjpe",
            landmarks.pa_mpjpe,
            False,
            description="MPJPE after per-sample similarity alignment",
            unit="landmark units (mm)",
            example=_landmark_example,
            inputs=_landmark_inputs,
        ),
        MetricSpec(
            "psnr",
            images.psnr,
            True,
            description="peak signal-to-noise ratio, optionally masked",
            unit="dB",
            example=_image_example,
            inputs=_image_inputs,
        ),
    ]
    return specs
