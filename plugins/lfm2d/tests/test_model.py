"""2D-LFM: the correspondence encoding, the closed-form camera of the 2D loss, Proposition 1, and conformance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from subspace_hub_lfm2d import LFM2D, LFM2DConfig, laplacian_phi, orthographic_procrustes, reprojection_loss, rff_phi
from subspace_hub_lfm2d.data import random_rotation
from subspace_hub_lfm2d.losses import canonical_loss, canonical_views, random_rotations
from subspace_hub_lfm2d.plugin import SPEC

import subspace_hub
from subspace_hub.testing import AdapterTests, BackboneTests, DatasetTests, PluginTests

TINY = "lfm2d-tiny"


class TestLFM2DBackbone(BackboneTests):
    backbone = "lfm2d"
    config = TINY


class TestLoRAOnLFM2D(AdapterTests):
    adapter = "lora"
    backbone = "lfm2d"
    config = TINY


class TestSubspaceOnLFM2D(AdapterTests):
    adapter = "subspace"
    backbone = "lfm2d"
    config = TINY


def test_phi_is_the_inverse_gaussian_cdf_spectrum():
    phi = rff_phi(10, 8, sigma=2.5)
    assert phi.shape == (10, 8) and torch.isfinite(phi).all()
    # w_k = sigma sqrt(2) erfinv((k + 1/2) / 4): the half-normal quantiles at 1/8, 3/8, 5/8, 7/8
    omega = [2.5 * math.sqrt(2) * float(torch.special.erfinv(torch.tensor((k + 0.5) / 4))) for k in range(4)]
    j = 3
    expected = [math.sin(w * j) for w in omega] + [math.cos(w * j) for w in omega]
    assert phi[j].tolist() == pytest.approx(expected, abs=1e-6)
    assert phi[0, :4].abs().max() == 0 and phi[0, 4:].tolist() == pytest.approx([1.0] * 4)
    distances = torch.cdist(phi, phi) + torch.eye(10) * 10
    assert float(distances.min()) > 0.1  # every landmark slot gets its own code


def test_laplacian_phi_is_a_function_of_the_graph_only():
    chain = torch.zeros(1, 5, 5)
    for i in range(4):
        chain[0, i, i + 1] = chain[0, i + 1, i] = 1
    projection = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    phi = laplacian_phi(chain, 12, projection)
    assert phi.shape == (1, 5, 12) and torch.isfinite(phi).all()
    assert torch.allclose(phi, laplacian_phi(chain.clone(), 12, projection))
    star = torch.zeros(1, 5, 5)
    star[0, 0, 1:] = star[0, 1:, 0] = 1
    assert not torch.allclose(phi, laplacian_phi(star, 12, projection), atol=1e-3)


def _random_rotation(rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(random_rotation(rng))


def test_orthographic_procrustes_recovers_the_camera_and_the_loss_is_blind_to_similarities():
    generator = torch.Generator().manual_seed(1)
    shape = torch.randn(1, 12, 3, generator=generator, dtype=torch.float64)
    rotation = _random_rotation(np.random.default_rng(1))
    x = 1.7 * (shape @ rotation.T)[..., :2] + torch.tensor([0.3, -0.2], dtype=torch.float64)
    visible = torch.ones(1, 12, dtype=torch.bool)
    scale, r2, _, _ = orthographic_procrustes(x, shape, visible)
    assert float(scale) == pytest.approx(1.7, rel=1e-7)  # exact up to the solve's tiny ridge
    assert torch.allclose(r2[0], rotation[:2], atol=1e-7)
    assert float(reprojection_loss(shape, x, visible)) < 1e-14
    # any similarity of the 3D prediction fits equally well (the camera absorbs it)
    other = 0.4 * shape @ _random_rotation(np.random.default_rng(2)).T + 5.0
    assert float(reprojection_loss(other, x, visible)) < 1e-14
    # a wrong shape does not; hidden landmarks are ignored, whatever their 2D coordinates
    assert float(reprojection_loss(torch.randn_like(shape), x, visible)) > 1e-2
    hidden = visible.clone()
    hidden[0, :3] = False
    noisy = x.clone()
    noisy[0, :3] += 100.0
    assert float(reprojection_loss(shape, noisy, hidden)) < 1e-14


def test_the_loss_trains_through_the_svd_and_with_a_stopped_camera():
    generator = torch.Generator().manual_seed(2)
    target = torch.randn(4, 9, 3, generator=generator)
    x = target[..., :2]
    visible = torch.ones(4, 9, dtype=torch.bool)
    for stop in (False, True):
        y = torch.randn(4, 9, 3, generator=generator, requires_grad=True)
        optimizer = torch.optim.Adam([y], lr=0.05)
        first = float(reprojection_loss(y.detach(), x, visible, stop_gradient=stop))
        for _ in range(200):
            optimizer.zero_grad()
            loss = reprojection_loss(y, x, visible, stop_gradient=stop)
            loss.backward()
            optimizer.step()
        assert float(loss) < 0.05 * first


def test_the_flat_lift_fits_every_view_but_fails_the_canonicalisation():
    """Why the 2D loss alone cannot train 2D-LFM: copying the 2D points and adding zero depth reprojects every view
    exactly. The canonicalisation term (a second lift of a rotated view must give the shape back) does not accept
    it, and accepts a lift that gives the shape back (here, the target itself, translated)."""
    torch.manual_seed(0)
    shapes = torch.randn(64, 10, 3, dtype=torch.float64)
    views = (shapes @ random_rotations(64, dtype=torch.float64).transpose(1, 2))[..., :2]
    visible = torch.ones(64, 10, dtype=torch.bool)

    def flat(points2d: torch.Tensor) -> torch.Tensor:
        return torch.cat([points2d, torch.zeros_like(points2d[..., :1])], dim=-1)

    assert float(reprojection_loss(flat(views), views, visible)) < 1e-20
    view, target = canonical_views(flat(views), visible)
    rms = view.square().sum(-1).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms))  # the new views are scaled as the data's are
    assert float(canonical_loss(flat(view), target, visible)) > 0.1
    assert float(canonical_loss(target + 3.0, target, visible)) < 1e-20


def test_random_rotations_are_proper_and_spread():
    torch.manual_seed(0)
    r = random_rotations(2000, dtype=torch.float64)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2000, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(2000, dtype=torch.float64))
    assert float(r.mean(0).abs().max()) < 0.05  # Haar: every entry averages to zero


def test_a_training_forward_lifts_a_rotated_view_again_and_the_loss_adds_it():
    spec = subspace_hub.plugins.get_backbone_spec("lfm2d")
    torch.manual_seed(0)
    model = LFM2D(LFM2DConfig.from_dict({**SPEC.presets[TINY], "canonical_weight": 0.5}))
    batch = _batch()
    terms = spec.loss_terms(spec.run(model.train(), batch), batch)
    assert set(terms) == {"loss", "reprojection", "canonical"}
    total = float(terms["loss"].detach())
    assert total == pytest.approx(float(terms["reprojection"] + 0.5 * terms["canonical"]), rel=1e-6)
    terms["loss"].backward()
    assert model.head.weight.grad is not None and float(model.head.weight.grad.norm()) > 0
    with torch.no_grad():  # evaluation, and a weight of 0, read the 2D loss alone
        assert set(spec.loss_terms(spec.run(model.eval(), batch), batch)) == {"loss", "reprojection"}
    off = LFM2D(LFM2DConfig.from_dict({**SPEC.presets[TINY], "canonical_weight": 0.0})).train()
    assert "canonical" not in spec.run(off, batch)


def _batch(n: int = 7, seed: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = torch.randn(2, n, 3, generator=generator)
    visible = torch.ones(2, n, dtype=torch.bool)
    visible[0, 2] = False
    return {
        "landmarks2d": shapes[..., :2],
        "visible": visible,
        "category": torch.tensor([0, 1]),
        "landmarks": shapes,
    }


def test_without_phi_a_permutation_of_the_landmarks_is_invisible_to_the_2d_loss():
    """Proposition 1: a permutation-equivariant model and a permutation-invariant 2D loss give every ordering the
    same loss; with Phi the landmark identity matters."""
    torch.manual_seed(0)
    plain = LFM2D(LFM2DConfig.from_dict({**SPEC.presets[TINY], "phi": "none"})).eval()
    torch.manual_seed(0)
    with_phi = LFM2D(LFM2DConfig.from_dict(SPEC.presets[TINY])).eval()
    batch = _batch()
    permutation = torch.tensor([4, 0, 6, 2, 1, 5, 3])
    permuted = {k: v[:, permutation] if k != "category" else v for k, v in batch.items()}
    spec = subspace_hub.plugins.get_backbone_spec("lfm2d")
    with torch.no_grad():
        out, out_permuted = spec.run(plain, batch), spec.run(plain, permuted)
        assert torch.allclose(out["landmarks"][:, permutation], out_permuted["landmarks"], atol=1e-5)
        assert float(spec.task_loss(out, batch)) == pytest.approx(
            float(spec.task_loss(out_permuted, permuted)), rel=1e-5
        )
        phi_out, phi_permuted = spec.run(with_phi, batch), spec.run(with_phi, permuted)
        assert not torch.allclose(phi_out["landmarks"][:, permutation], phi_permuted["landmarks"], atol=1e-3)


@pytest.mark.parametrize("layers", ["all", "input", "every_second", "first_last"])
def test_phi_placement_switches(layers):
    config = LFM2DConfig.from_dict({**SPEC.presets[TINY], "depth": 4, "phi_layers": layers})
    expected = {"all": [0, 1, 2, 3], "input": [], "every_second": [0, 2], "first_last": [0, 3]}[layers]
    assert [i for i in range(4) if config.phi_in_layer(i)] == expected
    out = LFM2D(config)(**{k: v for k, v in _batch().items() if k in ("landmarks2d", "visible", "category")})
    assert out["landmarks"].shape == (2, 7, 3)


def test_bad_configs_and_inputs_say_what_is_wrong():
    from subspace_hub.errors import ConfigError

    with pytest.raises(ConfigError, match="divisible by heads"):
        LFM2DConfig(dim=30, heads=4)
    with pytest.raises(ConfigError, match="phi_layers must be one of"):
        LFM2DConfig(phi_layers="sometimes")
    model = LFM2D(LFM2DConfig.from_dict(SPEC.presets[TINY]))
    with pytest.raises(ValueError, match="exceed max_landmarks"):
        model(torch.zeros(1, 40, 2), torch.ones(1, 40, dtype=torch.bool), torch.zeros(1, dtype=torch.long))  # 40 > 32
    laplacian = LFM2D(LFM2DConfig.from_dict({**SPEC.presets[TINY], "phi": "laplacian"}))
    with pytest.raises(ValueError, match="adjacency"):
        laplacian(torch.zeros(1, 4, 2), torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, dtype=torch.long))


def test_the_alternation_never_increases_the_2d_error_on_noisy_views():
    generator = torch.Generator().manual_seed(5)
    shape = torch.randn(16, 10, 3, generator=generator, dtype=torch.float64)
    x = (shape @ _random_rotation(np.random.default_rng(5)).T)[..., :2] + 0.1 * torch.randn(
        16, 10, 2, generator=generator, dtype=torch.float64
    )
    visible = torch.rand(16, 10, generator=generator) > 0.2
    errors = []
    for iterations in (0, 1, 2, 5):
        scale, r2, x_mean, y_mean = orthographic_procrustes(x, shape, visible, iterations=iterations)
        projected = scale[:, None, None] * ((shape - y_mean[:, None]) @ r2.transpose(1, 2))
        residual = ((x - x_mean[:, None]) - projected).square().sum(-1) * visible
        errors.append(residual.sum(1))
        assert torch.allclose(r2 @ r2.transpose(1, 2), torch.eye(2, dtype=torch.float64).expand(16, 2, 2), atol=1e-9)
    for before, after in zip(errors[:-1], errors[1:], strict=True):
        assert (after <= before + 1e-12).all()


class TestLandmarkDataset(DatasetTests):
    dataset = "lfm2d-synthetic"
    load_options = {"samples_per_category": 4}


class TestPlugin(PluginTests):
    plugin = "lfm2d"


def test_the_shape_basis_head_predicts_in_each_categorys_low_rank_family():
    """With shape_basis = K, every prediction is the category's mean shape plus a combination of its K basis
    shapes (so the residual of a least-squares fit in that span is zero), other categories use other bases, and
    a hidden landmark's token does not move the coefficients."""
    from subspace_hub_lfm2d.model import _BASIS_GAIN

    from subspace_hub.errors import ConfigError

    config = LFM2DConfig.from_dict({**SPEC.presets[TINY], "shape_basis": 3})
    model = LFM2D(config).eval()
    batch = _batch()
    points, visible = batch["landmarks2d"], batch["visible"]
    n = points.shape[1]
    with torch.no_grad():
        for category in (0, 1):
            out = model(points, visible, torch.full((points.shape[0],), category))["landmarks"]
            basis = model.basis[category, :, :n]  # [1 + K, N, 3] (a common gain does not change the span)
            residual = (out - basis[0] * _BASIS_GAIN).reshape(out.shape[0], -1).T  # [N * 3, B]
            span = basis[1:].reshape(3, -1).T  # [N * 3, K]
            fit = span @ torch.linalg.lstsq(span, residual).solution
            torch.testing.assert_close(fit, residual, atol=1e-5, rtol=0)
        hidden = visible.clone()
        hidden[:, 0] = False
        moved = points.clone()
        moved[:, 0] += 5.0
        category = torch.zeros(points.shape[0], dtype=torch.long)
        torch.testing.assert_close(
            model(points, hidden, category)["landmarks"], model(moved, hidden, category)["landmarks"]
        )
    assert LFM2D(LFM2DConfig.from_dict(SPEC.presets[TINY]))(points, visible, category)["landmarks"].shape == out.shape
    with pytest.raises(ConfigError, match="shape_basis must be >= 0"):
        LFM2DConfig(shape_basis=-1)


def test_the_3d_supervised_control_scores_the_shape_up_to_a_similarity():
    """supervision='3d' (a benchmark's control) trains on the samples' 3D shapes, hidden landmarks included, after
    the similarity that fits the prediction best: zero for the shape turned, scaled and moved, positive for a
    mirror image or another shape; it needs the 3D landmarks and never adds the canonicalisation term."""
    from subspace_hub_lfm2d.losses import aligned_shape_loss

    from subspace_hub.errors import ConfigError

    batch = _batch()
    shapes, real = batch["landmarks"].double(), torch.ones(2, 7, dtype=torch.bool)
    rotation = torch.from_numpy(np.stack([random_rotation(np.random.default_rng(i)) for i in range(2)]))
    moved = 2.5 * shapes @ rotation.transpose(1, 2) + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert float(aligned_shape_loss(moved, shapes, real)) == pytest.approx(0.0, abs=1e-20)
    mirror = shapes * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert float(aligned_shape_loss(mirror, shapes, real)) > 1e-2  # a rotation cannot undo a reflection
    wrong = moved.clone()
    wrong[0, 3] += torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)  # one landmark off: only there does it count
    masked = real.clone()
    masked[0, 3] = False
    assert float(aligned_shape_loss(wrong, shapes, real)) > 1e-2
    assert float(aligned_shape_loss(wrong, shapes, masked)) == pytest.approx(0.0, abs=1e-20)

    spec = subspace_hub.plugins.get_backbone_spec("lfm2d")
    control = LFM2D(LFM2DConfig.from_dict({**SPEC.presets[TINY], "supervision": "3d"})).train()
    outputs = spec.run(control, batch)
    assert "canonical" not in outputs
    terms = spec.loss_terms(outputs, batch)
    assert set(terms) == {"loss", "shape_3d"}
    expected = aligned_shape_loss(outputs["landmarks"].float(), batch["landmarks"].float(), real)
    assert float(terms["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    terms["loss"].backward()
    assert float(control.head.weight.grad.norm()) > 0
    with pytest.raises(ValueError, match="needs batch\\['landmarks'\\]"):
        spec.run(control, {k: v for k, v in batch.items() if k != "landmarks"})
    with pytest.raises(ConfigError, match="supervision must be 2d or 3d"):
        LFM2DConfig(supervision="depth")
