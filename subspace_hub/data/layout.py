"""Room layouts (shared/reference/methods.md A.2, D.2-D.3): a room shell with an optional window, boxes placed in
it, and a group of displaced primitives fitted into each box.

Two styles:

- ``attribute`` (the default): the paper's attribute scenes, a floor of 12-15 x 12-15 and a height of 12-18,
  large and small boxes only (at most 6 of each; no roof, wall, frame, slab or stick boxes). A geometry dataset
  uses one of the paper's 9 groups: group g allows up to (g mod 3) * 2 + 3 large and small boxes, and g // 3
  picks the primitives per box, 1-3 | 4-6 | 7-9 for large boxes (weights 2:3:3) and 1-2 | 3-4 | 5-6 for small
  ones (weights 2:3);
- ``megasynth``: MegaSynth's rooms (17-30 x 17-30 x 10-15) with every box kind of D.2.

The shell (room size, window) and the objects (boxes, primitives, height fields) come from separate seeds so a
geometry dataset can vary the objects inside a fixed shell while its cameras stay where they are. Lengths are
in MegaSynth's units here; :mod:`.scene` rescales the finished scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from subspace_hub.data.shapes import KINDS, Mesh, box, height_field, primitive, quad

# Primitive counts per box kind: {count: weight} (large boxes use the weights of the paper's fork).
GROUP_COUNTS = {
    "large": ({4: 5, 5: 7, 6: 10, 7: 10, 8: 7, 9: 5}),
    "small": ({2: 2, 3: 3, 4: 2, 5: 1}),
    "roof": ({2: 2, 3: 3, 4: 2, 5: 1}),
    "wall": ({2: 2, 3: 3, 4: 2, 5: 1}),
}


@dataclass(frozen=True)
class Shell:
    """The room: an axis-aligned box [0, size] with an optional window (a hole) in one wall."""

    size: np.ndarray
    """[3] room extent (x, y, z), z up."""
    window: tuple[int, float, float, float, float] | None
    """(wall index 0-3, u0, v0, u1, v1) in fractions of the wall, or ``None``."""


@dataclass
class ObjectBox:
    """An axis-aligned box in the room and what fills it."""

    kind: str
    centre: np.ndarray
    size: np.ndarray
    primitives: int = 0
    """Number of primitives in its group (0: the box itself is drawn, e.g. slabs and sticks)."""


@dataclass
class Layout:
    shell: Shell
    boxes: list[ObjectBox] = field(default_factory=list)


GROUP_BINS = {
    "large": (({1: 2, 2: 3, 3: 3}), ({4: 2, 5: 3, 6: 3}), ({7: 2, 8: 3, 9: 3})),
    "small": (({1: 2, 2: 3}), ({3: 2, 4: 3}), ({5: 2, 6: 3})),
}
"""The paper's geometry groups: primitives per box for group g // 3, as {count: weight}."""


def group_box_limit(group: int) -> int:
    """Most large (and most small) boxes of geometry group ``group``: 3, 5 or 7."""
    return (group % 3) * 2 + 3


def sample_shell(rng: np.random.Generator, style: str = "attribute") -> Shell:
    if style == "attribute":
        size = np.array([rng.uniform(12, 15), rng.uniform(12, 15), rng.uniform(12, 18)])
    else:
        size = np.array([rng.uniform(17, 30), rng.uniform(17, 30), rng.uniform(10, 15)])
    window = None
    if rng.random() < 0.8:
        w, h = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6)
        u0, v0 = rng.uniform(0.05, 0.95 - w), rng.uniform(0.15, 0.95 - h)
        window = (int(rng.integers(4)), u0, v0, u0 + w, v0 + h)
    return Shell(size, window)


def _count(rng: np.random.Generator, maximum: int, low: int | None = None) -> int:
    return int(rng.integers(maximum // 2 if low is None else low, maximum + 1))


def _overlaps(a: ObjectBox, others: Sequence[ObjectBox], margin: float = 0.05) -> bool:
    return any(bool(np.all(np.abs(a.centre - b.centre) < (a.size + b.size) / 2 + margin)) for b in others)


def _clear_of(box_: ObjectBox, points: np.ndarray, clearance: float) -> bool:
    if len(points) == 0:
        return True
    inside = np.all(np.abs(points - box_.centre) < box_.size / 2 + clearance, axis=1)
    return not bool(inside.any())


def _weighted(rng: np.random.Generator, table: dict[int, int]) -> int:
    counts, weights = zip(*table.items(), strict=True)
    p = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(counts, p=p / p.sum()))


def sample_layout(
    shell: Shell,
    rng: np.random.Generator,
    keep_clear: np.ndarray | None = None,
    clearance: float = 1.0,
    *,
    style: str = "attribute",
    group: int | None = None,
) -> Layout:
    """Boxes in the room (D.2), none overlapping another nor containing a ``keep_clear`` point (camera positions
    held fixed across a geometry dataset, in room units); ``group``: one of the paper's geometry groups 0-8."""
    room = shell.size
    points = np.zeros((0, 3)) if keep_clear is None else np.asarray(keep_clear, dtype=np.float64).reshape(-1, 3)
    layout = Layout(shell)

    def place(candidate: ObjectBox, tries_left: list[int], avoid_overlap: bool = True) -> bool:
        tries_left[0] -= 1
        inside = np.all(candidate.centre - candidate.size / 2 > 0.05) and np.all(
            candidate.centre + candidate.size / 2 < room - 0.05
        )
        if (
            inside
            and (not avoid_overlap or not _overlaps(candidate, layout.boxes))
            and _clear_of(candidate, points, clearance)
        ):
            layout.boxes.append(candidate)
            return True
        return False

    def draw(kind: str, count: int, make) -> None:
        placed, tries = 0, [200 * count]
        while placed < count and tries[0] > 0:
            if place(make(), tries):
                placed += 1

    def large(counts: dict[int, int]) -> ObjectBox:
        size = rng.uniform(4, 8, 3)
        centre = np.array(
            [
                rng.uniform(size[0] / 2, room[0] - size[0] / 2),
                rng.uniform(size[1] / 2, room[1] - size[1] / 2),
                size[2] / 2 + 0.06,
            ]
        )
        return ObjectBox("large", centre, size, _weighted(rng, counts))

    if style == "attribute":
        limit = 6 if group is None else group_box_limit(group)
        large_counts = GROUP_COUNTS["large"] if group is None else GROUP_BINS["large"][group // 3]
        small_counts = GROUP_COUNTS["small"] if group is None else GROUP_BINS["small"][group // 3]
    else:
        limit, large_counts, small_counts = 5, GROUP_COUNTS["large"], GROUP_COUNTS["small"]
    draw("large", _count(rng, limit), lambda: large(large_counts))
    large_boxes = [b for b in layout.boxes if b.kind == "large"]

    def small(counts: dict[int, int]) -> ObjectBox:
        if large_boxes and rng.random() < 0.5:  # on top of a large box
            base = large_boxes[int(rng.integers(len(large_boxes)))]
            size = rng.uniform(2, 4, 3)
            xy = base.centre[:2] + rng.uniform(-0.5, 0.5, 2) * np.maximum(base.size[:2] - size[:2], 0)
            centre = np.array([xy[0], xy[1], base.centre[2] + base.size[2] / 2 + size[2] / 2 + 0.06])
        else:
            size = np.array([rng.uniform(2, 4), rng.uniform(2, 4), rng.uniform(2, 6)])
            centre = np.array(
                [
                    rng.uniform(size[0] / 2, room[0] - size[0] / 2),
                    rng.uniform(size[1] / 2, room[1] - size[1] / 2),
                    size[2] / 2 + 0.06,
                ]
            )
        return ObjectBox("small", centre, size, _weighted(rng, counts))

    draw("small", _count(rng, limit if style == "attribute" else 8), lambda: small(small_counts))
    if style == "attribute":  # the paper's attribute scenes: large and small boxes only
        return layout

    def roof() -> ObjectBox:
        thickness = rng.uniform(0.5, 3) if rng.random() < 0.5 else rng.uniform(2, 4)
        size = np.array([rng.uniform(2, 5), rng.uniform(2, 5), thickness])
        centre = np.array(
            [
                rng.uniform(size[0] / 2, room[0] - size[0] / 2),
                rng.uniform(size[1] / 2, room[1] - size[1] / 2),
                room[2] - size[2] / 2 - 0.06,
            ]
        )
        return ObjectBox("roof", centre, size, _weighted(rng, GROUP_COUNTS["roof"]))

    draw("roof", _count(rng, 4), roof)

    def on_wall(kind: str, size: np.ndarray, primitives: int) -> ObjectBox:
        wall = int(rng.integers(4))
        axis, at_max = (0, wall == 1) if wall in (0, 1) else (1, wall == 3)
        other = 1 - axis
        size = size.copy()
        size[axis], size[other] = size[other], size[axis]  # the depth axis points away from the wall
        centre = np.empty(3)
        centre[axis] = room[axis] - size[axis] / 2 - 0.06 if at_max else size[axis] / 2 + 0.06
        centre[other] = rng.uniform(size[other] / 2, room[other] - size[other] / 2)
        centre[2] = rng.uniform(size[2] / 2 + 1, room[2] - size[2] / 2 - 1)
        return ObjectBox(kind, centre, size, primitives)

    draw(
        "wall",
        _count(rng, 6),
        lambda: on_wall(
            "wall",
            np.array([rng.uniform(2, 5), rng.uniform(0.5, 2), rng.uniform(2, 5)]),
            _weighted(rng, GROUP_COUNTS["wall"]),
        ),
    )
    if rng.random() < 0.7:  # axis-aligned slabs, thin or thick

        def slab() -> ObjectBox:
            thickness = rng.uniform(0.01, 0.2) if rng.random() < 0.5 else rng.uniform(0.5, 1)
            size = np.array([rng.uniform(2, 5), rng.uniform(2, 5), thickness])
            size = size[rng.permutation(3)]
            centre = rng.uniform(size / 2, room - size / 2)
            return ObjectBox("slab", centre, size)

        draw("slab", int(rng.integers(1, 3)), slab)
    # sticks along one wall (always) and free-standing poles (p = 0.5)
    wall_sticks = _count(rng, 16, 16 // 3)
    draw(
        "stick",
        wall_sticks,
        lambda: on_wall(
            "stick",
            np.array(
                [
                    rng.uniform(0.1, 0.6) if rng.random() < 0.7 else rng.uniform(0.6, 0.8),
                    rng.uniform(0.1, 0.6),
                    rng.uniform(3, room[2] - 2.5),
                ]
            ),
            0,
        ),
    )
    if rng.random() < 0.5:

        def pole() -> ObjectBox:
            width = rng.uniform(0.1, 0.6)
            size = np.array([width, width, room[2] - 0.2])
            centre = np.array([rng.uniform(1, room[0] - 1), rng.uniform(1, room[1] - 1), room[2] / 2])
            return ObjectBox("stick", centre, size)

        draw("stick", int(rng.integers(3, 7)), pole)
    return layout


def primitive_group(rng: np.random.Generator, count: int, resolution: int, materials: Sequence[int]) -> Mesh:
    """``count`` displaced primitives, each rotated and offset, the accumulated group re-posed from the second
    primitive on (D.3); returned unit-fitted: centred at 0 with its bounding box scaled to [-0.5, 0.5]^3."""
    group: Mesh | None = None
    for i in range(count):
        axes = rng.uniform(0.25, 2.0, 3)
        amplitude = rng.uniform(0, 0.3 * axes.min() * 2)
        fields = [height_field(rng, amplitude) for _ in range(6)]
        kind = KINDS[int(rng.integers(len(KINDS)))]
        mesh = primitive(kind, axes, fields, resolution, int(materials[i % len(materials)]))
        rotation = Rotation.from_euler("xyz", rng.uniform(0, 180, 3), degrees=True).as_matrix()
        mesh = mesh.transformed(rotation, rng.uniform(-0.5, 0.5, 3) * axes.max())
        if group is not None:
            rotation = Rotation.from_euler("xyz", rng.uniform(0, 180, 3), degrees=True).as_matrix()
            extent = np.ptp(group.vertices, axis=0).max()
            group = Mesh.concatenate([group.transformed(rotation, rng.uniform(-0.5, 0.5, 3) * extent), mesh])
        else:
            group = mesh
    assert group is not None
    low, high = group.vertices.min(axis=0), group.vertices.max(axis=0)
    scale = 1.0 / np.maximum(high - low, 1e-9)
    return group.transformed(np.diag(scale), -(low + high) / 2 * scale)


def shell_mesh(shell: Shell, material: int, resolution: int = 8, uv_density: float = 0.25) -> Mesh:
    """Floor, ceiling and four walls seen from inside; the window wall is built around its hole."""
    sx, sy, sz = shell.size
    walls = [  # (corner, edge_u, edge_v) facing into the room
        ((0, sy, 0), (0, -sy, 0), (0, 0, sz)),  # x = 0
        ((sx, 0, 0), (0, sy, 0), (0, 0, sz)),  # x = sx
        ((0, 0, 0), (sx, 0, 0), (0, 0, sz)),  # y = 0
        ((sx, sy, 0), (-sx, 0, 0), (0, 0, sz)),  # y = sy
    ]
    parts = [
        quad(
            (0, 0, 0), (0, sy, 0), (sx, 0, 0), material, resolution=resolution, uv_density=uv_density
        ),  # floor, facing up
        quad(
            (0, 0, sz), (sx, 0, 0), (0, sy, 0), material + 1, resolution=resolution, uv_density=uv_density
        ),  # ceiling, facing down
    ]
    for index, (corner, eu, ev) in enumerate(walls):
        corner, eu, ev = (np.asarray(v, dtype=np.float64) for v in (corner, eu, ev))
        if shell.window is None or shell.window[0] != index:
            parts.append(quad(corner, eu, ev, material + 2, resolution=resolution, uv_density=uv_density))
            continue
        _, u0, v0, u1, v1 = shell.window
        for (a0, a1), (b0, b1) in (((0, 1), (0, v0)), ((0, 1), (v1, 1)), ((0, u0), (v0, v1)), ((u1, 1), (v0, v1))):
            parts.append(
                quad(
                    corner + a0 * eu + b0 * ev,
                    (a1 - a0) * eu,
                    (b1 - b0) * ev,
                    material + 2,
                    resolution=max(resolution // 2, 1),
                    uv_density=uv_density,
                )
            )
    return Mesh.concatenate(parts)


def layout_mesh(
    layout: Layout,
    rng: np.random.Generator,
    resolution: int,
    materials_per_group: int = 3,
    *,
    shell: bool = True,
    jitter: float = 0.0,
    jitter_rng: np.random.Generator | None = None,
) -> tuple[Mesh, int]:
    """The whole room as one mesh and the number of material slots used. Slots: 0-2 the shell (floor,
    ceiling, walls; reserved even without the shell, so a texture seed styles the objects alike either way),
    then one run of ``materials_per_group`` slots per box in placement order.

    ``jitter`` > 0 (the paper's texture experiment 2) turns every primitive group about the vertical by up to
    ``jitter`` x 30 degrees and shrinks it by up to ``jitter`` per axis, drawn from ``jitter_rng``: the same
    objects, slightly changed, while ``rng`` draws exactly what it draws without jitter."""
    parts = [shell_mesh(layout.shell, 0)] if shell else []
    slot = 3
    for item in layout.boxes:
        if item.primitives:
            unit = primitive_group(rng, item.primitives, resolution, list(range(slot, slot + materials_per_group)))
            if jitter > 0 and jitter_rng is not None:
                turn = Rotation.from_euler("z", jitter_rng.uniform(-30, 30) * jitter, degrees=True).as_matrix()
                shrink = np.diag(1 - jitter * jitter_rng.uniform(0, 1, 3))
                unit = unit.transformed(shrink @ turn, np.zeros(3))
            parts.append(unit.transformed(np.diag(item.size), item.centre))
            slot += materials_per_group
        else:
            parts.append(box(item.size, item.centre, slot, uv_density=0.5))
            slot += 1
    return Mesh.concatenate(parts), slot


def primitive_count(layout: Layout) -> int:
    return sum(b.primitives for b in layout.boxes)
