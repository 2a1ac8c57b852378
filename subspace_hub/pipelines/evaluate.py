"""Scoring a backbone (optionally adapted) on dataset samples with registered metrics: what ``subspace-hub
evaluate`` runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from subspace_hub.errors import ConfigError, MetricInputError
from subspace_hub.interchange import sample_to_batch
from subspace_hub.metrics.aggregate import mean_over_samples
from subspace_hub.provenance import build_info
from subspace_hub.specs import BackboneSpec, MetricSpec


@dataclass
class EvaluationReport:
    """Per-scene scores and their averages (weighted by ``valid_pixels`` where a metric reports it)."""

    metrics: list[MetricSpec]
    scenes: list[dict[str, Any]] = field(default_factory=list)
    """One entry per sample: ``scene_id`` and ``{metric: {output: value}}``."""

    def summary(self) -> dict[str, dict[str, float]]:
        """Metric -> output -> average over scenes."""
        out: dict[str, dict[str, float]] = {}
        for spec in self.metrics:
            results = [scene["metrics"][spec.name] for scene in self.scenes if spec.name in scene["metrics"]]
            if not results:
                continue
            out[spec.name] = mean_over_samples(results, spec.outputs or (spec.name,))
        return out

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(metric, output, value, better direction) rows for a table."""
        rows = []
        for spec in self.metrics:
            for key, value in self.summary().get(spec.name, {}).items():
                direction = spec.direction(key)
                arrow = "" if direction is None else ("higher" if direction else "lower")
                rows.append((spec.name, key, f"{value:.6g}", arrow))
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "scenes": self.scenes}


def _scores(spec: MetricSpec, value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {k: float(v) for k, v in value.items()}
    return {spec.name: float(value)}


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _cpu(v) for k, v in value.items()}
    return value


def evaluate_backbone(
    model: torch.nn.Module,
    backbone: BackboneSpec,
    samples: Iterable[Mapping[str, Any]],
    metrics: Sequence[MetricSpec],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
    autocast: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Run ``model`` over ``samples`` and score each sample with every metric.

    Args:
        model: the backbone (adapted or merged), put in eval mode on ``device``.
        backbone: its spec, whose :meth:`~BackboneSpec.run` and :meth:`~BackboneSpec.predictions` are used.
        samples: interchange records (see :func:`subspace_hub.data.sample_to_batch`).
        metrics: specs with ``inputs`` (how they read predictions and samples).
        options: per metric name, keyword arguments for its ``compute`` (e.g. ``{"depth": {"align": "median"}}``).
        autocast: bf16 autocast on CUDA. Metrics run on the CPU in float64.
        limit: score at most this many samples.
    """
    from tqdm.auto import tqdm

    for spec in metrics:
        if spec.inputs is None:
            raise ConfigError(
                f"Metric {spec.name!r} does not say how to read predictions (its spec has no inputs=), so evaluate "
                "cannot run it."
            )
    options = {k: dict(v) for k, v in (options or {}).items()}
    unknown = sorted(set(options) - {m.name for m in metrics})
    if unknown:
        raise ConfigError(f"Options given for metric(s) not being computed: {', '.join(unknown)}.")
    report = EvaluationReport(list(metrics))
    if hasattr(samples, "with_format"):  # a datasets.Dataset: arrays, not nested Python lists (many times faster)
        samples = samples.with_format("numpy")
    model.eval().to(device)
    total = None if limit is None else limit
    if total is None and hasattr(samples, "__len__"):
        total = len(samples)  # type: ignore[arg-type]
    with tqdm(total=total, desc="evaluate", unit="scene", disable=not progress) as bar:
        for index, sample in enumerate(samples):
            if limit is not None and index >= limit:
                break
            report.scenes.append(_score_sample(model, backbone, sample, index, metrics, options, device, autocast))
            bar.update(1)
    if not report.scenes:
        raise ConfigError("The dataset yielded no sample to evaluate.")
    return report


def _score_sample(
    model: torch.nn.Module,
    backbone: BackboneSpec,
    sample: Mapping[str, Any],
    index: int,
    metrics: Sequence[MetricSpec],
    options: Mapping[str, Mapping[str, Any]],
    device: str | torch.device,
    autocast: bool,
) -> dict[str, Any]:
    """Predict one sample and score it with every metric: ``{"scene_id": ..., "metrics": {name: {output: value}}}``."""
    batch = sample_to_batch(sample, device)
    if index == 0 and "images" in batch:  # refuse images the backbone cannot take before scoring anything
        info = build_info(model)
        backbone.check_image_size(*batch["images"].shape[-2:], info.config if info is not None else None)
    with (
        torch.no_grad(),
        torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast and torch.device(device).type == "cuda"),
    ):
        outputs = backbone.run(model, batch)
    predictions, cpu_batch = _cpu(backbone.predictions(outputs, batch)), _cpu(batch)
    scene: dict[str, Any] = {"scene_id": sample.get("scene_id", str(index)), "metrics": {}}
    for spec in metrics:
        try:
            prediction, reference, kwargs = spec.inputs(predictions, cpu_batch)
            scene["metrics"][spec.name] = _scores(
                spec, spec.compute(prediction, reference, **{**kwargs, **options.get(spec.name, {})})
            )
        except MetricInputError as exc:
            raise MetricInputError(f"scene {scene['scene_id']!r}, metric {spec.name!r}: {exc}") from exc
    return scene
