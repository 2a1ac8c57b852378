"""The samples of the ecosystem (DESIGN.md, Conventions), and their conversion to tensors.

Two kinds. A **multi-view** record holds ``scene_id``, ``images`` (S RGB images: PIL images as ``datasets``
decodes them, or arrays [S, H, W, 3] uint8 / [S, 3, H, W] float in [0, 1]), ``depth`` [S, H, W] (scene units, 0
where invalid), ``mask`` [S, H, W], ``intrinsics`` [S, 3, 3] (pixels), ``extrinsics`` [S, 3, 4]
(camera-from-world, OpenCV axes) and optionally ``normals`` [S, H, W, 3] and ``world_points`` [S, H, W, 3]. A
**landmark** record (one 2D view of a set of landmarks, what landmark lifters such as 2D-LFM read) holds
``scene_id``, ``landmarks2d`` [N, 2], ``visible`` [N] bool and ``category`` (int), optionally ``valid`` [N] bool
(real slots; the rest is padding), ``landmarks`` [N, 3] (the 3D ground truth, for evaluation) and ``adjacency``
[N, N]. Other keys pass through untouched.

Datasets, metrics and backbones all read this module; it imports numpy and torch only to convert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from subspace_hub.errors import ConfigError

if TYPE_CHECKING:
    import torch

REQUIRED_KEYS: tuple[str, ...] = ("scene_id", "images", "depth", "mask", "intrinsics", "extrinsics")
"""The keys every record of a dataset holds."""
OPTIONAL_KEYS: tuple[str, ...] = ("normals", "world_points")
"""The keys a record may hold as well."""
LANDMARK_KEYS: tuple[str, ...] = ("scene_id", "landmarks2d", "visible", "category")
"""The keys every landmark record holds."""
BATCH_KEYS: tuple[str, ...] = ("images", "depth", "intrinsics", "extrinsics")
"""What :func:`sample_to_batch` needs: a missing ``mask`` is derived from ``depth > 0``, ``scene_id`` is optional."""
FLOAT_KEYS = ("depth", "intrinsics", "extrinsics", "normals", "world_points", "landmarks", "landmarks2d", "adjacency")


def is_landmark_sample(sample: Mapping[str, Any]) -> bool:
    """A landmark record (``landmarks2d``) rather than a multi-view one."""
    return "landmarks2d" in sample


def images_to_tensor(images: Any) -> torch.Tensor:
    """S images -> float32 [S, 3, H, W] in [0, 1]."""
    import numpy as np
    import torch

    if isinstance(images, torch.Tensor):
        array = images
    elif isinstance(images, np.ndarray):
        array = torch.from_numpy(images)
    else:
        frames = [
            np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image) for image in images
        ]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ConfigError(f"The images of one sample must share a size, got {sorted(shapes)}.")
        array = torch.from_numpy(np.stack(frames))
    if array.ndim != 4:
        raise ConfigError(f"images must be S images ([S, H, W, 3] or [S, 3, H, W]), got shape {tuple(array.shape)}.")
    if array.shape[-1] == 3 and array.shape[1] != 3:
        array = array.permute(0, 3, 1, 2)
    if array.dtype == torch.uint8:
        return array.float() / 255.0
    return array.float()


def sample_to_batch(sample: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, Any]:
    """A record -> tensors with a leading batch dimension of 1 (``images`` [1, S, 3, H, W], ``depth`` [1, S, H, W],
    ``mask`` bool [1, S, H, W], cameras [1, S, 3, 3|4], ...), on ``device``."""
    import numpy as np
    import torch

    if is_landmark_sample(sample):
        return _landmarks_to_batch(sample, device)
    missing = [k for k in BATCH_KEYS if sample.get(k) is None]
    if missing:
        raise ConfigError(
            f"A sample in the interchange format needs {', '.join(missing)}; it has {', '.join(sorted(sample))}."
        )
    batch: dict[str, Any] = {}
    for key, value in sample.items():
        if key == "images":
            batch[key] = images_to_tensor(value)[None]
        elif key in FLOAT_KEYS and value is not None:
            batch[key] = torch.as_tensor(np.asarray(value, dtype=np.float32))[None]
        elif key in ("mask", "visible") and value is not None:
            batch[key] = torch.as_tensor(np.asarray(value)).bool()[None]
        else:
            batch[key] = value
    if batch.get("mask") is None:
        batch["mask"] = batch["depth"] > 0
    if device is not None:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batch


def _landmarks_to_batch(sample: Mapping[str, Any], device: torch.device | str | None) -> dict[str, Any]:
    import numpy as np
    import torch

    missing = [k for k in LANDMARK_KEYS if k != "scene_id" and sample.get(k) is None]
    if missing:
        raise ConfigError(f"A landmark sample needs {', '.join(missing)}; it has {', '.join(sorted(sample))}.")
    batch: dict[str, Any] = {}
    for key, value in sample.items():
        if key in FLOAT_KEYS and value is not None:
            batch[key] = torch.as_tensor(np.asarray(value, dtype=np.float32))[None]
        elif key in ("visible", "valid") and value is not None:
            batch[key] = torch.as_tensor(np.asarray(value)).bool()[None]
        elif key == "category":
            batch[key] = torch.as_tensor(np.asarray(value), dtype=torch.long).reshape(1)
        else:
            batch[key] = value
    if device is not None:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batch
