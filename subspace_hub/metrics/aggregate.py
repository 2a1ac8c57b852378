"""Averaging per-sample scores over a dataset, the way the field reports them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

WEIGHT_KEY = "valid_pixels"
"""The entry by which a metric's result says how much it counts: depth metrics report their valid pixels, so a
dataset's average is over pixels, not over scenes of different sizes."""


def mean_over_samples(results: Sequence[Mapping[str, float]], keys: Iterable[str]) -> dict[str, float]:
    """Key -> the average of ``results[i][key]`` weighted by each result's ``valid_pixels`` (1 where absent).

    >>> mean_over_samples([{"abs_rel": 0.1, "valid_pixels": 3}, {"abs_rel": 0.5, "valid_pixels": 1}], ["abs_rel"])
    {'abs_rel': 0.2}
    """
    total = sum(float(result.get(WEIGHT_KEY, 1.0)) for result in results)
    return {key: sum(float(r.get(WEIGHT_KEY, 1.0)) * r[key] for r in results) / total for key in keys}
