"""The LRM (images with cameras -> a triplane -> volume-rendered RGB, depth and mask) and LIM (a triplane at any time
alpha between two keyframes), after methods.md C.

LRM: each input view's pixels are concatenated with their Pluecker rays (direction, moment: 9 channels) and cut into
patches (a trainable patch embedding stands in for DINOv2, which cannot be downloaded here); learned triplane tokens
pass ``lrm_depth`` pre-LayerNorm blocks (image cross-attention, self-attention, MLP); a linear map and a pixel shuffle
turn each plane token into ``upsample`` x ``upsample`` texels of ``triplane_channels`` features. A point's feature
is the sum of its bilinear samples on the xy, xz and yz planes; a small MLP decodes density and colour; rays are
rendered by quadrature inside the scene box [-bound, bound]^3.

LIM: starting from the LRM's output tokens of keyframe k plus a time encoding of alpha, ``lim_depth`` pre-LayerNorm
blocks each cross-attend to one of the LRM's last ``lim_depth`` block outputs of keyframe k, then to the image tokens
of keyframe k + 1, then self-attend, then an MLP; its own triplane head (initialised from the LRM's) gives the
triplane at k + alpha. :meth:`LIM.initialise_from_lrm` copies the LRM's weights as the paper's supplement says.

Module names (adapter targets): LRM ``lrm.blocks.{i}.cross|attn.q|k|v|proj``, ``lrm.blocks.{i}.mlp.fc1|fc2``;
LIM ``blocks.{i}.features|image|attn.q|k|v|proj``, ``blocks.{i}.mlp.fc1|fc2``, ``head.upsample``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from subspace_hub_lim.config import LIMConfig

PLANES = ((0, 1), (0, 2), (1, 2))
"""The coordinate pairs of the three planes: xy, xz, yz."""


def camera_rays(
    intrinsics: torch.Tensor, extrinsics: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, ...]:
    """World rays through the pixel centres (integer coordinates, the interchange convention): intrinsics
    [..., 3, 3], camera-from-world extrinsics [..., 3, 4] -> (origins [..., H, W, 3], unit directions [..., H, W, 3],
    the cosine of each ray with the optical axis [..., H, W], which turns distance along the ray into z-depth)."""
    dtype, device = intrinsics.dtype, intrinsics.device
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device), torch.arange(width, dtype=dtype, device=device), indexing="ij"
    )
    pixels = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # [H, W, 3]
    camera = pixels @ torch.linalg.inv(intrinsics).transpose(-1, -2)[..., None, :, :]  # [..., H, W, 3]
    rotation_t = extrinsics[..., :3, :3].transpose(-1, -2)
    directions = camera @ rotation_t.transpose(-1, -2)[..., None, :, :]
    norm = directions.norm(dim=-1, keepdim=True)
    origins = (-rotation_t @ extrinsics[..., :3, 3:])[..., 0]
    return origins[..., None, None, :].expand_as(directions), directions / norm, 1.0 / norm[..., 0]


def plucker(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Pluecker coordinates (direction, moment = origin x direction) [..., 6] of rays [..., 3]."""
    return torch.cat([directions, torch.linalg.cross(origins, directions, dim=-1)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention of the stream ``x`` [B, T, D] to ``context`` [B, M, D] (itself by default)."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.dim, config.dim)
        self.k = nn.Linear(config.dim, config.dim)
        self.v = nn.Linear(config.dim, config.dim)
        self.proj = nn.Linear(config.dim, config.dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, t, d = x.shape
        q = self.q(x).reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        k, v = (f(context).reshape(b, -1, self.heads, d // self.heads).transpose(1, 2) for f in (self.k, self.v))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        hidden = int(config.dim * config.mlp_ratio)
        self.fc1 = nn.Linear(config.dim, hidden)
        self.fc2 = nn.Linear(hidden, config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LRMBlock(nn.Module):
    """LN -> image cross-attention -> residual; LN -> self-attention -> residual; LN -> MLP -> residual."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.norm1, self.cross = nn.LayerNorm(config.dim), Attention(config)
        self.norm2, self.attn = nn.LayerNorm(config.dim), Attention(config)
        self.norm3, self.mlp = nn.LayerNorm(config.dim), MLP(config)

    def forward(self, x: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        x = x + self.cross(self.norm1(x), image_tokens)
        x = x + self.attn(self.norm2(x))
        return x + self.mlp(self.norm3(x))


class LIMBlock(nn.Module):
    """LN -> cross-attention to an LRM block's output of keyframe k; LN -> cross-attention to the image tokens of
    keyframe k + 1; LN -> self-attention; LN -> MLP; each with its residual."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.norm_features, self.features = nn.LayerNorm(config.dim), Attention(config)
        self.norm_image, self.image = nn.LayerNorm(config.dim), Attention(config)
        self.norm_attn, self.attn = nn.LayerNorm(config.dim), Attention(config)
        self.norm_mlp, self.mlp = nn.LayerNorm(config.dim), MLP(config)

    def forward(self, x: torch.Tensor, features: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        x = x + self.features(self.norm_features(x), features)
        x = x + self.image(self.norm_image(x), image_tokens)
        x = x + self.attn(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))


class TriplaneHead(nn.Module):
    """Tokens [B, 3 r^2, D] -> triplane [B, 3, C, r u, r u] (a linear map to u^2 C per token, a pixel shuffle)."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.dim)
        self.upsample = nn.Linear(config.dim, config.triplane_channels * config.upsample**2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        c, r, u = self.config.triplane_channels, self.config.triplane_tokens, self.config.upsample
        b = tokens.shape[0]
        texels = self.upsample(self.norm(tokens)).reshape(b * 3, r, r, c * u * u).permute(0, 3, 1, 2)
        return F.pixel_shuffle(texels, u).reshape(b, 3, c, r * u, r * u)


class Decoder(nn.Module):
    """A point's triplane feature [..., C] -> (density [...] >= 0, colour [..., 3] in (0, 1))."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.triplane_channels, config.decoder_width)
        self.fc2 = nn.Linear(config.decoder_width, 4)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.fc2(F.silu(self.fc1(features)))
        return F.softplus(out[..., 0] - 1.0), torch.sigmoid(out[..., 1:])


def sample_triplane(triplane: torch.Tensor, points: torch.Tensor, bound: float) -> torch.Tensor:
    """Features [B, N, C] at points [B, N, 3] of the box [-bound, bound]^3: the sum of the bilinear samples on the
    xy, xz and yz planes of ``triplane`` [B, 3, C, R, R] (zero outside the box)."""
    coords = points / bound
    total = 0
    for plane, (i, j) in enumerate(PLANES):
        grid = coords[..., [i, j]][:, :, None, :]  # [B, N, 1, 2]: grid_sample's (x, y) = (first, second) axis
        sampled = F.grid_sample(triplane[:, plane], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        total = total + sampled[..., 0].transpose(1, 2)
    return total


def render_rays(
    decoder: Decoder,
    triplane: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    config: LIMConfig,
    *,
    jitter: bool = False,
) -> dict[str, torch.Tensor]:
    """Volume-render rays [B, N, 3] through ``triplane`` [B, 3, C, R, R] over the scene box, on a black background:
    ``rgb`` [B, N, 3], ``distance`` [B, N] (expected distance along the ray, weighted by the opacity), ``opacity``
    [B, N] in [0, 1]. ``jitter`` draws each sample's place in its stratum (training); else the stratum centres."""
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t0, t1 = (-config.bound - origins) / safe, (config.bound - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    far = torch.where(hit, far, near + 1e-3)
    steps = config.samples_per_ray
    offsets = torch.rand(*near.shape, steps, device=near.device) if jitter else torch.full((steps,), 0.5)
    fractions = (torch.arange(steps, device=near.device, dtype=near.dtype) + offsets.to(near)) / steps
    t = near[..., None] + (far - near)[..., None] * fractions  # [B, N, S]
    points = origins[..., None, :] + t[..., None] * directions[..., None, :]
    b, n = points.shape[:2]
    features = sample_triplane(triplane, points.reshape(b, n * steps, 3), config.bound)
    density, colour = decoder(features)
    density = density.reshape(b, n, steps) * hit[..., None]
    delta = ((far - near) / steps)[..., None]
    alpha = 1.0 - torch.exp(-density * delta)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1] + 1e-10], -1), -1)
    weights = alpha * transmittance
    return {
        "rgb": (weights[..., None] * colour.reshape(b, n, steps, 3)).sum(-2),
        "distance": (weights * t).sum(-1),
        "opacity": weights.sum(-1),
    }


class ImageTokenizer(nn.Module):
    """Views [B, V, 3, H, W] in [0, 1] with cameras -> tokens [B, V P, D] (patches of RGB + Pluecker rays)."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.patch = nn.Conv2d(9, config.dim, config.patch_size, stride=config.patch_size)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
        b, v, _, h, w = images.shape
        origins, directions, _ = camera_rays(intrinsics.float(), extrinsics.float(), h, w)
        rays = plucker(origins, directions).permute(0, 1, 4, 2, 3)  # [B, V, 6, H, W]
        x = torch.cat([images.to(rays.dtype) * 2.0 - 1.0, rays], dim=2).reshape(b * v, 9, h, w)
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # [B V, P, D]
        return self.norm(tokens.reshape(b, -1, tokens.shape[-1]))


class Renderer(nn.Module):
    """Triplanes -> images seen by cameras: the :class:`Decoder` and :func:`render_rays` over every pixel."""

    def __init__(self, config: LIMConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = Decoder(config)

    def forward(
        self, triplane: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor, height: int, width: int
    ) -> dict[str, torch.Tensor]:
        """``triplane`` [B, 3, C, R, R], cameras [B, V, 3, 3|4] -> ``rgb`` [B, V, 3, H, W], ``depth`` [B, V, H, W]
        (z-depth where opaque, divided by the opacity), ``mask`` [B, V, H, W] (the opacity)."""
        b, v = intrinsics.shape[:2]
        origins, directions, cosine = camera_rays(intrinsics.float(), extrinsics.float(), height, width)
        out = render_rays(
            self.decoder,
            triplane,
            origins.reshape(b, -1, 3),
            directions.reshape(b, -1, 3),
            self.config,
            jitter=self.training,
        )
        opacity = out["opacity"].reshape(b, v, height, width)
        depth = out["distance"].reshape(b, v, height, width) * cosine / opacity.clamp(min=1e-6)
        rgb = out["rgb"].reshape(b, v, height, width, 3).permute(0, 1, 4, 2, 3)
        return {"rgb": rgb, "depth": depth, "mask": opacity}


class LRM(nn.Module):
    """``forward(images [B, V, 3, H, W], intrinsics [B, V, 3, 3], extrinsics [B, V, 3, 4], target cameras =
    the inputs') -> {"triplane", "rgb", "depth", "mask"}``."""

    def __init__(self, config: LIMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LIMConfig()
        self.tokenizer = ImageTokenizer(config)
        self.tokens = nn.Parameter(torch.randn(3 * config.triplane_tokens**2, config.dim) * 0.02)
        self.blocks = nn.ModuleList(LRMBlock(config) for _ in range(config.lrm_depth))
        self.head = TriplaneHead(config)
        self.renderer = Renderer(config)

    def encode(
        self, images: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the output tokens [B, T, D], every block's output [B, T, D])."""
        image_tokens = self.tokenizer(images, intrinsics, extrinsics)
        x = self.tokens.to(image_tokens.dtype).expand(images.shape[0], -1, -1)
        features = []
        for block in self.blocks:
            x = block(x, image_tokens)
            features.append(x)
        return x, features

    def forward(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        extrinsics: torch.Tensor,
        target_intrinsics: torch.Tensor | None = None,
        target_extrinsics: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        tokens, _ = self.encode(images, intrinsics, extrinsics)
        triplane = self.head(tokens)
        targets = (intrinsics, extrinsics) if target_intrinsics is None else (target_intrinsics, target_extrinsics)
        return {"triplane": triplane, **self.renderer(triplane, *targets, images.shape[-2], images.shape[-1])}


def time_encoding(alpha: torch.Tensor, frequencies: int) -> torch.Tensor:
    """alpha [B] in [0, 1] -> [B, 2 F] sinusoids of frequencies pi 2^0 ... pi 2^(F-1)."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=alpha.device, dtype=torch.float32)
    angles = alpha.float()[:, None] * scales
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def lim_from_lrm(lrm: LRM, **overrides: object) -> LIM:
    """A LIM on a trained ``lrm`` (built with :func:`subspace_hub.load_backbone`, so that
    :func:`subspace_hub.save_backbone` can save it): the LRM's config with ``overrides`` (e.g. ``causal_weight=0``),
    its LRM a copy of ``lrm``, its blocks started from the LRM's as :meth:`LIM.initialise_from_lrm` says. Train it
    from that saved folder (``--pretrained``)."""
    import subspace_hub

    lim = subspace_hub.load_backbone("lim", config={**lrm.config.to_dict(), **overrides})
    lim.lrm.load_state_dict(lrm.state_dict())
    lim.initialise_from_lrm()
    return lim


class LIM(nn.Module):
    """The interpolator over a (frozen) :class:`LRM`, ``self.lrm``. :meth:`interpolate` is the model; the
    plugin's ``forward`` builds the training passes from it."""

    def __init__(self, config: LIMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LIMConfig()
        self.lrm = LRM(config)
        self.time = nn.Linear(2 * config.time_frequencies, config.dim)
        nn.init.zeros_(self.time.weight)
        nn.init.zeros_(self.time.bias)
        self.blocks = nn.ModuleList(LIMBlock(config) for _ in range(config.lim_depth))
        self.head = TriplaneHead(config)
        self.initialise_from_lrm()

    def initialise_from_lrm(self) -> None:
        """The supplement's initialisation: in block i, the feature cross-attention and the self-attention from
        LRM block ``lrm_depth - lim_depth + i``'s self-attention, the image cross-attention from its image
        cross-attention, the MLP from its MLP (with their LayerNorms); the triplane head from the LRM's."""
        offset = self.config.lrm_depth - self.config.lim_depth
        with torch.no_grad():
            for i, block in enumerate(self.blocks):
                source = self.lrm.blocks[offset + i]
                pairs = [
                    (block.features, source.attn),
                    (block.norm_features, source.norm2),
                    (block.image, source.cross),
                    (block.norm_image, source.norm1),
                    (block.attn, source.attn),
                    (block.norm_attn, source.norm2),
                    (block.mlp, source.mlp),
                    (block.norm_mlp, source.norm3),
                ]
                for target, origin in pairs:
                    target.load_state_dict(origin.state_dict())
            self.head.load_state_dict(self.lrm.head.state_dict())

    def keyframe(
        self, images: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """What LIM reads of keyframe k, from the LRM: (the stream LIM starts from [B, T, D], see
        ``LIMConfig.lim_stream``; the LRM's last ``lim_depth`` block outputs)."""
        tokens, features = self.lrm.encode(images, intrinsics, extrinsics)
        if self.config.lim_stream == "lrm-block":
            offset = self.config.lrm_depth - self.config.lim_depth
            tokens = features[offset - 1] if offset else self.lrm.tokens.to(tokens.dtype).expand_as(tokens)
        return tokens, features[-self.config.lim_depth :]

    def interpolate(
        self, tokens: torch.Tensor, features: list[torch.Tensor], next_image_tokens: torch.Tensor, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Keyframe k's stream ``tokens`` [B, T, D] and ``features`` (``lim_depth`` x [B, T, D]), keyframe k + 1's
        image tokens, ``alpha`` [B] -> (the triplane at k + alpha [B, 3, C, R, R], LIM's own block outputs, the
        stream a second hop from k + alpha starts from): the outputs stand in for the LRM's features there, and the
        stream is LIM's output tokens (``lim_stream="lrm-output"``) or, with ``lrm-block``, keyframe k's (nothing
        computes the LRM's block-level stream at k + alpha)."""
        x = tokens + self.time(time_encoding(alpha, self.config.time_frequencies)).to(tokens.dtype)[:, None]
        outputs = []
        for block, feature in zip(self.blocks, features, strict=True):
            x = block(x, feature, next_image_tokens)
            outputs.append(x)
        return self.head(x), outputs, tokens if self.config.lim_stream == "lrm-block" else x

    def forward(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        extrinsics: torch.Tensor,
        next_images: torch.Tensor,
        next_intrinsics: torch.Tensor,
        next_extrinsics: torch.Tensor,
        alpha: torch.Tensor,
    ) -> torch.Tensor:
        """The triplane at k + alpha [B, 3, C, R, R] from the views of keyframes k and k + 1 and ``alpha`` [B]."""
        tokens, features = self.keyframe(images, intrinsics, extrinsics)
        next_tokens = self.lrm.tokenizer(next_images, next_intrinsics, next_extrinsics)
        return self.interpolate(tokens, features, next_tokens, alpha)[0]
