"""LRM and LIM: rays and rendering against geometry, the supplement's initialisation, the two LIM losses, and
conformance of both backbones with the adapters."""

from __future__ import annotations

import pytest
import torch
from subspace_hub_lim import LIM, LRM, LIMConfig, camera_rays, render_rays, sample_triplane
from subspace_hub_lim.config import PRESETS
from subspace_hub_lim.model import Decoder
from subspace_hub_lim.plugin import _cameras, draw_keyframes

import subspace_hub
from subspace_hub.errors import ConfigError
from subspace_hub.geometry import project_points
from subspace_hub.testing import AdapterTests, BackboneTests, DatasetTests, PluginTests

TINY = "lim-tiny"


class TestLRMBackbone(BackboneTests):
    backbone = "lrm"
    config = TINY


class TestLIMBackbone(BackboneTests):
    backbone = "lim"
    config = TINY


class TestDataset(DatasetTests):
    dataset = "lim-synthetic-4d"
    load_options = {"sequences": 2, "keyframes": 3, "cameras": 3, "size": 16, "per": "keyframe"}


class TestPlugin(PluginTests):
    plugin = "lim"


class TestLoRAOnLIM(AdapterTests):
    adapter = "lora"
    backbone = "lim"
    config = TINY


class TestSubspaceOnLIM(AdapterTests):
    adapter = "subspace"
    backbone = "lim"
    config = TINY


def test_camera_rays_pass_through_the_pixels_they_belong_to():
    intrinsics, extrinsics = _cameras(3, size=16)
    origins, directions, cosine = camera_rays(intrinsics, extrinsics, 16, 16)
    points = origins + 2.7 * directions  # [3, H, W, 3]: a point on every pixel's ray
    pixels, z = project_points(points.reshape(3, -1, 3), extrinsics, intrinsics)
    v, u = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    expected = torch.stack([u, v], -1).reshape(1, -1, 2).expand(3, -1, -1)
    assert torch.allclose(pixels, expected, atol=1e-4)
    assert torch.allclose(z, (2.7 * cosine).reshape(3, -1), atol=1e-5)  # distance x cosine = z-depth


def test_a_solid_triplane_renders_the_box_it_fills():
    """A triplane whose density is large everywhere in the scene box renders an opaque silhouette of the box, at the
    depth where each ray enters it; rays that miss the box stay transparent."""
    config = LIMConfig.from_dict({**PRESETS[TINY], "samples_per_ray": 64})
    decoder = Decoder(config)
    with torch.no_grad():
        decoder.fc1.weight.zero_()
        decoder.fc1.bias.fill_(1.0)
        decoder.fc2.weight.zero_()
        decoder.fc2.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 0.0]))  # density ~59 per unit, grey colour
    triplane = torch.zeros(1, 3, config.triplane_channels, config.plane_size, config.plane_size)
    origins = torch.tensor([[[0.0, 0.0, -3.0], [0.0, 0.0, -3.0], [0.0, 3.0, -3.0]]])
    directions = torch.tensor([[[0.0, 0.0, 1.0], [0.28, 0.0, 0.96], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        out = render_rays(decoder, triplane, origins, directions, config)
    opacity, distance = out["opacity"][0], out["distance"][0]
    assert float(opacity[0]) > 0.99 and float(opacity[1]) > 0.99 and float(opacity[2]) == 0.0
    assert float(distance[0] / opacity[0]) == pytest.approx(2.0, abs=0.05)  # enters the box at z = -1
    assert float(distance[1] / opacity[1]) == pytest.approx(2 / 0.96, abs=0.05)  # at z = -1, x = 0.58
    assert torch.allclose(out["rgb"][0, 0], torch.full((3,), 0.5), atol=0.01)


def test_triplane_features_are_the_sum_of_the_three_planes():
    triplane = torch.zeros(1, 3, 1, 2, 2)
    triplane[0, 0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # xy plane: row = y, column = x
    triplane[0, 1, 0] = 10.0  # xz
    triplane[0, 2, 0] = 100.0  # yz
    point = torch.tensor([[[0.5, -0.5, 0.0]]])  # the x > 0, y < 0 texel of the xy plane
    assert float(sample_triplane(triplane, point, 1.0)) == pytest.approx(2.0 + 10.0 + 100.0)


def test_lim_starts_as_the_lrm_blocks_it_reads():
    torch.manual_seed(0)
    lim = LIM(LIMConfig.from_dict(PRESETS[TINY]))
    offset = lim.config.lrm_depth - lim.config.lim_depth
    for i, block in enumerate(lim.blocks):
        source = lim.lrm.blocks[offset + i]
        assert torch.equal(block.features.q.weight, source.attn.q.weight)
        assert torch.equal(block.attn.proj.weight, source.attn.proj.weight)
        assert torch.equal(block.image.k.weight, source.cross.k.weight)
        assert torch.equal(block.mlp.fc2.weight, source.mlp.fc2.weight)
    assert torch.equal(lim.head.upsample.weight, lim.lrm.head.upsample.weight)
    assert not torch.equal(lim.blocks[0].image.q.weight, lim.blocks[0].attn.q.weight)


def test_the_lim_losses_and_the_frozen_lrm():
    spec = subspace_hub.plugins.get_backbone_spec("lim")
    torch.manual_seed(0)
    model = subspace_hub.load_backbone("lim", config=TINY)
    batch = spec.example_batch(model)
    outputs = spec.run(model.train(), batch)
    assert outputs["triplane"].shape == outputs["teacher"].shape == outputs["causal"].shape
    terms = spec.loss_terms(outputs, batch)
    assert set(terms) == {"loss", "triplane", "causal"}
    terms["loss"].backward()
    assert all(p.grad is None for p in model.lrm.parameters())  # the LRM is the teacher: never trained
    assert model.blocks[0].attn.q.weight.grad is not None
    # without the causal weight, one hop; in evaluation, no second hop either
    off = LIM(LIMConfig.from_dict({**PRESETS[TINY], "causal_weight": 0.0})).train()
    assert "causal" not in spec.run(off, batch)
    with torch.no_grad():
        assert "causal" not in spec.run(model.eval(), batch)


def test_the_causal_target_is_a_constant_unless_asked_otherwise():
    spec = subspace_hub.plugins.get_backbone_spec("lim")
    assert LIMConfig().causal_stop_gradient  # the default: the study in BENCHMARKS.md
    for stop in (True, False):
        torch.manual_seed(0)
        model = LIM(LIMConfig.from_dict({**PRESETS[TINY], "causal_stop_gradient": stop})).train()
        batch = spec.example_batch(model)
        outputs = spec.run(model, batch)
        assert torch.equal(outputs["causal_target"], outputs["triplane"].detach())  # the one hop, as a target
        assert outputs["causal_target"].requires_grad is not stop
        # the causal term's gradient reaches the weights through the second hop either way
        outputs["causal"].sub(outputs["causal_target"]).square().mean().backward()
        assert model.blocks[-1].mlp.fc2.weight.grad.abs().sum() > 0


def test_keyframes_are_drawn_two_to_four_apart_with_one_between():
    torch.manual_seed(0)
    seen = set()
    for _ in range(300):
        source, between, target = draw_keyframes(6)
        assert 2 <= target - source <= 4 and source < between < target and target <= 5
        seen.add(target - source)
    assert seen == {2, 3, 4}
    assert draw_keyframes(3) == (0, 1, 2)
    with pytest.raises(ValueError, match="at least 3 keyframes"):
        draw_keyframes(2)


def test_lrm_trains_on_its_views():
    """A few steps of the LRM losses on one sample (views of a sphere) lower them: the renderer is differentiable
    end to end."""
    spec = subspace_hub.plugins.get_backbone_spec("lrm")
    torch.manual_seed(0)
    model = LRM(LIMConfig.from_dict(PRESETS[TINY])).train()
    batch = spec.example_batch(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = spec.task_loss(spec.run(model, batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_lim_from_lrm_carries_the_trained_lrm_and_the_overrides():
    from subspace_hub_lim import lim_from_lrm

    torch.manual_seed(0)
    lrm = subspace_hub.load_backbone("lrm", config=TINY)
    with torch.no_grad():
        lrm.tokens.add_(1.0)  # "trained": differs from any fresh initialisation
    lim = lim_from_lrm(lrm, causal_weight=0.0)
    assert lim.config.causal_weight == 0.0 and lim.config.dim == lrm.config.dim
    assert all(torch.equal(a, b) for a, b in zip(lim.lrm.state_dict().values(), lrm.state_dict().values(), strict=True))
    offset = lim.config.lrm_depth - lim.config.lim_depth
    assert torch.equal(lim.blocks[0].image.q.weight, lrm.blocks[offset].cross.q.weight)


@pytest.mark.parametrize("depths", [(4, 2), (2, 2)])
def test_lim_stream_starts_where_its_first_block_sits_in_the_lrm(depths):
    """``lim_stream="lrm-block"`` (the default): LIM's stream is the LRM's stream entering block
    ``lrm_depth - lim_depth`` (the learned triplane tokens when LIM mirrors every block); ``lrm-output``: the LRM's
    output tokens.
    A second hop restarts from keyframe k's stream with ``lrm-block``, from LIM's output with ``lrm-output``."""
    lrm_depth, lim_depth = depths
    torch.manual_seed(0)
    config = {**PRESETS[TINY], "lrm_depth": lrm_depth, "lim_depth": lim_depth}
    block = LIM(LIMConfig.from_dict(config)).eval()
    output = LIM(LIMConfig.from_dict({**config, "lim_stream": "lrm-output"})).eval()
    output.load_state_dict(block.state_dict())
    views = subspace_hub.plugins.get_backbone_spec("lrm").example_batch(block.lrm)
    images, intrinsics, extrinsics = views["images"][:, :4], views["intrinsics"][:, :4], views["extrinsics"][:, :4]
    with torch.no_grad():
        tokens, features = block.lrm.encode(images, intrinsics, extrinsics)
        start, read = block.keyframe(images, intrinsics, extrinsics)
        expected = features[lrm_depth - lim_depth - 1] if lrm_depth > lim_depth else block.lrm.tokens.expand_as(tokens)
        assert torch.equal(start, expected) and not torch.equal(start, tokens)
        assert all(torch.equal(a, b) for a, b in zip(read, features[-lim_depth:], strict=True))
        default_start, _ = output.keyframe(images, intrinsics, extrinsics)
        assert torch.equal(default_start, tokens)
        alpha = torch.tensor([0.5])
        next_tokens = block.lrm.tokenizer(images, intrinsics, extrinsics)
        assert torch.equal(block.interpolate(start, read, next_tokens, alpha)[2], start)
        triplane, _, stream = output.interpolate(tokens, read, next_tokens, alpha)
        assert torch.equal(output.head(stream), triplane)
    with pytest.raises(ConfigError, match="lim_stream"):
        LIMConfig(lim_stream="lrm-middle")
