"""The builtin metrics as Hugging Face ``evaluate`` modules, shipped in the package and loadable offline::

    import evaluate
    from subspace_hub.metrics import evaluate_module_path

    chamfer = evaluate.load(evaluate_module_path("chamfer"))
    chamfer.compute(predictions=[pred_points], references=[gt_points])

Each module folder (``evaluate_modules/<name>/<name>.py``) holds one :class:`SubspaceHubMetric` subclass naming
its registered metric. Inputs are one example per scene (a point cloud [N, 3], a depth map [H, W], landmarks
[J, 3], an image [C, H, W]); the result averages the per-example numbers (depth metrics weighted by valid pixels,
as video-depth evaluation does), and keyword arguments of ``compute`` go to the metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from subspace_hub.errors import ConfigError, MetricInputError, UnknownComponentError
from subspace_hub.metrics.aggregate import mean_over_samples

MODULES_DIR = Path(__file__).parent / "evaluate_modules"

# Input kind of each packaged metric: which `datasets` feature describes one example.
INPUT_KINDS: dict[str, str] = {
    "chamfer": "points",
    "normal_consistency": "points",
    "reconstruction": "points",
    "depth": "depth",
    "abs_rel": "depth",
    "sq_rel": "depth",
    "rmse": "depth",
    "log_rmse": "depth",
    "delta": "depth",
    "mpjpe": "points",
    "pa_mpjpe": "points",
    "psnr": "image",
}

CITATION = """@misc{subspace_hub,
  title  = {subspace-hub: attribute-subspace fine-tuning of 3D foundation models},
  note   = {Metric conventions of the DUSt3R/VGGT evaluation family (Acc/Comp/NC, CUT3R depth metrics)}
}"""


def evaluate_module_path(name: str) -> str:
    """The folder of the packaged ``evaluate`` module of metric ``name`` (for ``evaluate.load``)."""
    path = MODULES_DIR / name
    if not (path / f"{name}.py").is_file():
        raise UnknownComponentError("evaluate module", name, dict.fromkeys(INPUT_KINDS))
    return str(path)


def _features(kind: str) -> Any:
    import datasets

    if kind == "points":
        column: Any = datasets.Array2D(shape=(None, 3), dtype="float64")
    elif kind == "depth":
        column = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
    else:
        column = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))
    return datasets.Features({"predictions": column, "references": column})


def _base() -> type:
    try:
        import evaluate
    except ImportError:
        raise ConfigError(
            "The metrics' evaluate modules need the evaluate package: pip install 'subspace-hub[evaluate]'."
        ) from None

    class SubspaceHubMetric(evaluate.Metric):
        """An ``evaluate`` metric backed by the registered :class:`~subspace_hub.MetricSpec` ``metric_name``."""

        metric_name: ClassVar[str]

        def _spec(self) -> Any:
            from subspace_hub.plugins import get_metric

            return get_metric(self.metric_name)

        def _info(self) -> Any:
            spec = self._spec()
            return evaluate.MetricInfo(
                description=spec.description,
                citation=CITATION,
                inputs_description=f"predictions and references: one {INPUT_KINDS[self.metric_name]} per example; "
                f"keyword arguments go to subspace_hub's {self.metric_name} metric.",
                features=_features(INPUT_KINDS[self.metric_name]),
            )

        def _compute(self, predictions: Any, references: Any, **options: Any) -> dict[str, float]:
            import numpy as np

            spec = self._spec()
            if self.metric_name == "reconstruction":  # one example: the predicted and GT points of its valid pixels
                from subspace_hub.metrics.reconstruction import point_cloud_metrics as compute
            else:
                compute = spec.compute
            if len(predictions) == 0:
                raise MetricInputError(f"{self.metric_name}: no examples to score; add predictions and references.")
            values = []
            for pred, ref in zip(predictions, references, strict=True):
                pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
                result = compute(pred, ref, **options)
                values.append(result if isinstance(result, dict) else {self.metric_name: result})
            return mean_over_samples(values, spec.outputs or (self.metric_name,))

    return SubspaceHubMetric


_BASE: type | None = None


def __getattr__(name: str) -> Any:
    # `evaluate` (and through it `datasets`) is imported only when a module folder asks for the base class.
    global _BASE
    if name == "SubspaceHubMetric":
        if _BASE is None:
            _BASE = _base()
        return _BASE
    raise AttributeError(name)
