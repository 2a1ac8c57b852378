"""The synthetic landmark data: deterministic, normalised views of deformed category shapes, 2D consistent with 3D."""

from __future__ import annotations

import numpy as np
import pytest
from subspace_hub_lfm2d.data import CATEGORIES, LandmarkSpec, category_mean_shapes, generate_samples


def test_views_are_orthographic_projections_of_the_3d_shape_and_deterministic():
    spec = LandmarkSpec(samples_per_category=5, noise=0.0, occlusion=0.2, seed=3)
    samples = list(generate_samples(spec))
    again = list(generate_samples(spec))
    assert len(samples) == 5 * len(CATEGORIES)
    for a, b in zip(samples, again, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in ("landmarks2d", "visible", "landmarks"))
    for sample in samples:
        valid, visible = sample["valid"], sample["visible"]
        n = len(CATEGORIES[sample["scene_id"].rsplit("-", 1)[0]][0])
        assert valid.sum() == n and not visible[~valid].any() and visible.sum() >= 3
        # noise-free: the 2D landmarks are the x, y of the 3D ones (camera frame), centred with unit RMS radius
        np.testing.assert_allclose(sample["landmarks2d"][valid], sample["landmarks"][valid, :2], atol=1e-6)
        seen = sample["landmarks2d"][visible]
        np.testing.assert_allclose(seen.mean(0), 0, atol=1e-5)
        assert np.sqrt((seen**2).sum(1).mean()) == pytest.approx(1.0, rel=1e-5)
        assert not sample["landmarks2d"][~valid].any()


def test_instances_vary_within_a_category_and_the_mean_shape_baseline_is_per_category():
    samples = list(generate_samples(LandmarkSpec(samples_per_category=20, categories=("human", "chair"), seed=1)))
    humans = [s for s in samples if s["category"] == 0]
    assert not np.allclose(humans[0]["landmarks"], humans[1]["landmarks"], atol=1e-2)
    means = category_mean_shapes(samples)
    assert set(means) == {0, 1} and means[0].shape == (32, 3)
    with pytest.raises(ValueError, match="Unknown landmark category"):
        list(generate_samples(LandmarkSpec(categories=("dragon",))))


def test_the_cli_exports_the_landmark_data_as_a_dataset_folder_with_a_card(tmp_path, capsys):
    """`subspace-hub data export` writes what `datasets.load_dataset` reads back row for row, with a card that says
    how it was made; a bad option or an occupied folder is refused and changes nothing."""
    import datasets
    from huggingface_hub import DatasetCard
    from subspace_hub_lfm2d.data import load_landmarks

    from subspace_hub.cli import main

    out = tmp_path / "landmarks"
    args = ["data", "export", "lfm2d-synthetic", str(out), "--option", "samples_per_category=8"]
    args += ["--option", "categories=[human, chair]", "--option", "seed=5"]
    assert main(args) == 0, capsys.readouterr().err
    loaded = datasets.load_dataset(str(out))
    expected = load_landmarks(samples_per_category=8, categories=["human", "chair"], seed=5)
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        assert len(loaded[split]) == len(expected[split])
        np.testing.assert_allclose(loaded[split]["landmarks2d"], expected[split]["landmarks2d"])
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc0-1.0"
    assert "seed: 5" in card.text and "| train | 12 |" in card.text and "`landmarks2d`" in card.text
    before = sorted(p.name for p in out.rglob("*"))
    capsys.readouterr()
    assert main(["data", "export", "lfm2d-synthetic", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "export", "lfm2d-synthetic", str(tmp_path / "x"), "--option", "seeds=1"]) == 1
    error = capsys.readouterr().err
    assert "no load option seeds" in error and "samples_per_category" in error
    assert not (tmp_path / "x").exists() and sorted(p.name for p in out.rglob("*")) == before


@pytest.mark.parametrize("modes", [1, 3])
def test_rigid_instances_lie_in_the_categorys_low_rank_family(modes):
    """A rigid template's instance is the template scaled per axis plus a combination of the category's ``modes``
    fixed displacement fields, up to the jitter (0.02 x deformation): a least-squares fit over those 3 + modes
    unknowns leaves only the jitter, one mode fewer leaves far more, and the modes are the same for every seed."""
    from subspace_hub_lfm2d.data import deform, shape_modes

    rest = CATEGORIES["chair"][0]
    fields = shape_modes("chair", modes)
    np.testing.assert_array_equal(fields, shape_modes("chair", modes))
    assert not np.allclose(shape_modes("chair", 3)[0], shape_modes("bottle", 3)[0, : len(rest)])
    columns = [(rest * np.eye(3)[axis]).ravel() for axis in range(3)] + [field.ravel() for field in fields]
    residuals = {True: [], False: []}
    for seed in range(20):
        shape = deform("chair", np.random.default_rng(seed), 0.3, modes).ravel()
        for complete in (True, False):
            basis = np.stack(columns if complete else columns[:-1], 1)
            fit = basis @ np.linalg.lstsq(basis, shape, rcond=None)[0]
            residuals[complete].append(np.sqrt(np.mean((fit - shape) ** 2)))
    assert np.mean(residuals[True]) < 0.006 * 1.3  # the jitter's standard deviation is 0.02 * 0.3
    assert np.mean(residuals[False]) > 3 * np.mean(residuals[True])
    with pytest.raises(ValueError, match="modes and deformation must be >= 0"):
        list(generate_samples(LandmarkSpec(modes=-1)))
