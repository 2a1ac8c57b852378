"""Independent checks of the building blocks against explicit math, and invariances of the implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import subspace_hub
from subspace_hub_vggt.heads.dpt import DPTHead
from subspace_hub_vggt.layers import Attention, apply_rope, rope_tables
from subspace_hub_vggt.plugin import example_batch


def rope_reference(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """2D RoPE written as explicit 2x2 rotations: y rotates the first half of each head, x the second; in a
    half of size d, pair (j, j + d/2) turns by position * base ** (-2j/d)."""
    out = x.clone()
    d = x.shape[-1] // 2
    for axis in range(2):
        for j in range(d // 2):
            theta = positions[:, axis].float() * base ** (-2 * j / d)
            a, b = axis * d + j, axis * d + j + d // 2
            cos, sin = theta.cos(), theta.sin()
            out[..., a] = x[..., a] * cos - x[..., b] * sin
            out[..., b] = x[..., b] * cos + x[..., a] * sin
    return out


def test_rope_matches_explicit_rotations():
    positions = torch.tensor([[0, 0], [1, 3], [4, 2], [7, 7]])
    x = torch.randn(2, 3, 4, 16)
    torch.testing.assert_close(apply_rope(x, rope_tables(positions, 16, 100.0)), rope_reference(x, positions, 100.0))


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(16), torch.randn(16)

    def score(pq, pk):
        tables_q = rope_tables(torch.tensor([pq]), 16, 100.0)
        tables_k = rope_tables(torch.tensor([pk]), 16, 100.0)
        return (apply_rope(q[None], tables_q) * apply_rope(k[None], tables_k)).sum()

    torch.testing.assert_close(score((3, 5), (1, 2)), score((10, 9), (8, 6)))
    assert not torch.isclose(score((3, 5), (1, 2)), score((3, 5), (2, 2)))


def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(32, 4, qk_norm=True)
    x = torch.randn(2, 5, 32)
    positions = torch.randint(0, 6, (5, 2))
    tables = rope_tables(positions, 8, 100.0)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k = (
        F.layer_norm(q, (8,), attn.q_norm.weight, attn.q_norm.bias),
        F.layer_norm(k, (8,), attn.k_norm.weight, attn.k_norm.bias),
    )
    q, k = rope_reference(q, positions, 100.0), rope_reference(k, positions, 100.0)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(attn(x, tables), expected, atol=1e-5, rtol=1e-5)


def _tiny(**overrides):
    torch.manual_seed(0)
    return subspace_hub.load_backbone("vggt", config={**_tiny_config(), **overrides}).eval()


def _tiny_config():
    from subspace_hub_vggt.config import PRESETS

    return dict(PRESETS["vggt-tiny"])


def test_keeping_only_needed_layers_changes_nothing():
    model = _tiny()
    images = example_batch(model, views=3)["images"]
    everything = model.aggregator(images)
    needed = model.aggregator(images, keep_layers={1, 3})
    assert needed[0] is None and needed[2] is None
    assert torch.equal(needed[1], everything[1]) and torch.equal(needed[3], everything[3])


def test_dpt_frame_chunking_changes_nothing():
    model = _tiny()
    head: DPTHead = model.depth_head
    images = example_batch(model, views=5)["images"]
    layers = model.aggregator(images)
    results = []
    for chunk in (0, 1, 2, 8):
        results.append(head(layers, images.shape[-2:], model.aggregator.patch_start_idx, frames_chunk_size=chunk))
    for depth, conf in results[1:]:
        torch.testing.assert_close(depth, results[0][0], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(conf, results[0][1], atol=1e-6, rtol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    grads = []
    for checkpointing in (False, True):
        model = _tiny().train()
        model.gradient_checkpointing_enable(checkpointing)
        batch = example_batch(model)
        spec.loss(model(batch["images"]), batch)["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_heads_under_bf16_autocast():
    """fp32 heads keep the depth within 1e-4 of the fp32 model (measured 1.4e-5; the aggregator alone runs in bf16),
    bf16 heads within 1e-2 (measured 2.9e-3), and fp32 heads at least ten times closer than bf16 ones."""
    errors = {}
    for precision, dtype, bound in (("fp32", torch.float32, 1e-4), ("autocast", torch.bfloat16, 1e-2)):
        model = _tiny()
        model.head_precision = precision
        batch = example_batch(model)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch["images"])
        assert out["depth"].dtype == out["world_points"].dtype == dtype
        with torch.no_grad():
            reference = model(batch["images"])
        errors[precision] = float(((out["depth"].float() - reference["depth"]).abs() / reference["depth"].abs()).max())
        assert errors[precision] < bound, (precision, errors[precision])
    assert errors["fp32"] < errors["autocast"] / 10


def test_an_unknown_head_precision_is_refused():
    model = _tiny()
    model.head_precision = "bf16"
    with pytest.raises(ValueError, match="'fp32' or 'autocast'"):
        model(example_batch(model)["images"])


def test_compiled_heads_give_the_same_maps():
    model = _tiny()
    images = example_batch(model)["images"]
    with torch.no_grad():
        before = model(images)
        model.compile_heads(backend="eager")  # the graph capture without a C++ compiler: same ops, same numbers
        after = model(images)
    assert model.depth_head._compiled_call_impl is not None and model.point_head._compiled_call_impl is not None
    for key in ("depth", "depth_conf", "world_points", "world_points_conf"):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)


def test_training_mode_omits_images_and_predictions_follow_the_interchange_format():
    model = _tiny().train()
    batch = example_batch(model, batch_size=2, views=3)
    out = model(batch["images"])
    assert "images" not in out
    spec = subspace_hub.plugins.get_backbone_spec("vggt")
    pred = spec.predict(out, batch)
    assert pred["depth"].shape == (2, 3, 28, 42) and pred["world_points"].shape == (2, 3, 28, 42, 3)
    assert pred["extrinsics"].shape == (2, 3, 3, 4) and pred["intrinsics"].shape == (2, 3, 3, 3)
    assert pred["world_points_head"].shape == (2, 3, 28, 42, 3)


def test_compiled_blocks_give_the_same_outputs():
    model = _tiny()
    batch = example_batch(model)
    with torch.no_grad():
        reference = model(batch["images"])
    model.compile_blocks(backend="eager")  # dynamo capture without a C++ toolchain; GPUs use the default backend
    assert len(model.transformer_blocks()) == 2 * 4 + 1
    with torch.no_grad():
        compiled = model(batch["images"])
    torch.testing.assert_close(compiled["depth"], reference["depth"])
    torch.testing.assert_close(compiled["pose_enc"], reference["pose_enc"])
