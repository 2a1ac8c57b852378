"""Camera placements of the synthetic scenes (shared/reference/methods.md D.4-D.5), in OpenCV conventions:
extrinsics camera-from-world ``[R | t]`` with x right, y down, z forward; intrinsics in pixels.

- ``standard``: MegaSynth's mix of boundary cameras looking at the room centre (3 in 4) and free-looking centre
  cameras (yaw U(-180, 180), pitch 90 +- 10, roll +- 10 degrees);
- ``orbit`` (the default, as the paper's attribute datasets): a smooth path through control points on a sphere
  about a look-at target (consecutive control points less than 3 pi / 4 apart, a degree-4 spline through them),
  with MegaSynth's distance range 0.85-1.5 D, or a camera dataset's own range within the camera-variation mode's
  0.7-2.0 D and target spread;
- ``micro``: micro-baseline trajectories (D.5): a start 0.25 room-sides from an object, 10 control points
  drifting by at most ``step_limit`` (0.01 room-sides) and rotating by at most ``rotation_limit`` degrees per axis,
  views along a natural cubic spline with SLERP rotations.

Positions are in room units (MegaSynth's), like :mod:`.layout`; :mod:`.scene` rescales both together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from subspace_hub.data.choices import CAMERA_MODES
from subspace_hub.errors import ConfigError


@dataclass
class CameraPath:
    """Cameras of one scene: world-from-camera rotations [S, 3, 3] and centres [S, 3], horizontal FOV in degrees."""

    rotations: np.ndarray
    centres: np.ndarray
    fov: float
    controls: tuple[np.ndarray, np.ndarray] | None = None
    """Control positions [C, 3] and rotations [C, 3, 3] of a spline path (``orbit``: positions only)."""
    target: np.ndarray | None = None
    """[3] the point an ``orbit`` path looks at."""

    def extrinsics(self, scale: float = 1.0) -> np.ndarray:
        """[S, 3, 4] camera-from-world for the scene scaled by ``scale``."""
        r = self.rotations.transpose(0, 2, 1)
        t = -np.einsum("sij,sj->si", r, self.centres * scale)
        return np.concatenate([r, t[..., None]], axis=-1)

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """[S, 3, 3]: square pixels, principal point at the image centre."""
        focal = width / 2 / np.tan(np.radians(self.fov) / 2)
        k = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        return np.repeat(k[None], len(self.centres), axis=0)


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-from-camera rotation with z towards ``target`` and y pointing down (world z is up)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight up or down
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def _free_rotation(rng: np.random.Generator) -> np.ndarray:
    """A camera looking horizontally (pitch 90 +- 10 degrees from straight down) at a random yaw, with roll."""
    yaw, pitch, roll = rng.uniform(-180, 180), 90 + rng.uniform(-10, 10), rng.uniform(-10, 10)
    # Start looking straight down (-z world), roll about that axis, tilt up by the pitch about world x (90 degrees
    # is horizontal), then turn by the yaw about world z: R = Rz(yaw) Rx(pitch) Rz(roll) base.
    base = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    return Rotation.from_euler("zxz", [roll, pitch, yaw], degrees=True).as_matrix() @ base


def _first_valid(draw: Callable[[], np.ndarray], valid: Callable[[np.ndarray], bool], tries: int = 3000) -> np.ndarray:
    """The first of up to ``tries`` draws that ``valid`` accepts, else one more draw."""
    for _ in range(tries):
        point = draw()
        if valid(point):
            return point
    return draw()  # crowded rooms: accept the last draw rather than fail the scene


def standard(rng: np.random.Generator, room: np.ndarray, views: int, valid: Callable[[np.ndarray], bool]) -> CameraPath:
    boundary = int(round(views * 36 / 48))
    rotations, centres = [], []
    centre_of_room = room / 2
    for i in range(views):
        if i < boundary:
            inset = rng.uniform(0.012, 0.03) * room.max()

            def draw(inset: float = inset) -> np.ndarray:
                face = int(rng.integers(6))
                point = rng.uniform(inset, room - inset)
                axis, high = face // 2, face % 2
                point[axis] = room[axis] - inset if high else inset
                return point

            position = _first_valid(draw, valid)
            target = centre_of_room + rng.normal(0, 0.05, 3) * room
            rotations.append(look_at(position, target))
        else:
            position = _first_valid(lambda: centre_of_room + rng.uniform(-0.125, 0.125, 3) * room, valid)
            rotations.append(_free_rotation(rng))
        centres.append(position)
    return CameraPath(np.stack(rotations), np.stack(centres), float(rng.uniform(45, 70)))


def orbit(
    rng: np.random.Generator,
    room: np.ndarray,
    views: int,
    valid: Callable[[np.ndarray], bool],
    *,
    centre: np.ndarray | None = None,
    unit: float | None = None,
    distance: tuple[float, float] = (0.85, 1.5),
    target_sigma: float = 0.0,
    control_points: int = 6,
    inside: bool = True,
) -> CameraPath:
    """The paper's camera paths (D.4): control points on a sphere about a look-at target, consecutive ones less
    than 3 pi / 4 apart, and a degree-4 spline through them for the views, every view looking at the target.

    Distances are ``distance`` x ``unit`` (MegaSynth's D; default: a sixth of the room's smallest side, so paths
    stay in the room); the target is ``centre`` (default: the room's) plus N(0, ``target_sigma``^2) x D / sqrt(3)
    per axis (MegaSynth's camera-variation mode: 0.35 with distances 0.7-2.0; by default 0 and 0.85-1.5).
    ``inside``: control points must also stay within the room."""
    from scipy.interpolate import make_interp_spline

    unit = float(room.min()) / 6 if unit is None else unit
    centre = room / 2 if centre is None else centre
    target = centre + rng.normal(0, target_sigma, 3) * unit / np.sqrt(3)
    points: list[np.ndarray] = []
    for _ in range(control_points):

        def draw() -> np.ndarray:
            direction = rng.normal(size=3)
            direction[2] = abs(direction[2]) * 0.5
            direction /= np.linalg.norm(direction)
            return target + direction * rng.uniform(*distance) * unit

        def ok(p: np.ndarray) -> bool:
            if inside and not (np.all(p > 0.05 * room) and np.all(p < 0.95 * room)):
                return False
            if not valid(p):
                return False
            if points:
                a, b = points[-1] - target, p - target
                return np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)) < 3 * np.pi / 4
            return True

        points.append(_first_valid(draw, ok))
    knots = np.linspace(0, 1, control_points)
    spline = make_interp_spline(knots, np.stack(points), k=min(4, control_points - 1))
    centres = spline(np.linspace(0, 1, views))
    rotations = np.stack([look_at(c, target) for c in centres])
    return CameraPath(rotations, centres, float(rng.uniform(45, 70)), (np.stack(points), np.zeros((0, 3, 3))), target)


def micro(
    rng: np.random.Generator,
    room: np.ndarray,
    views: int,
    valid: Callable[[np.ndarray], bool],
    objects: np.ndarray,
    *,
    control_points: int = 10,
    step_limit: float = 0.01,
    rotation_limit: float = 1.0,
    distance: float = 0.25,
) -> CameraPath:
    """Micro-baseline trajectory (D.5). The paper's ``distance`` (0.25) and ``step_limit`` (0.01) are lengths in
    its plane scenes; here they are fractions of the room's smallest side, which keeps their ratio (each step at
    most 4 % of the viewing distance) and the camera inside the room."""
    from scipy.interpolate import CubicSpline

    unit = float(room.min())
    if len(objects) == 0:
        objects = (room / 2)[None]
    up = np.array([0.0, 0.0, 1.0])
    for _ in range(100):  # an object and a start angle that put the camera inside the room, clear of boxes
        centre = objects[int(rng.integers(len(objects)))]
        theta, phi = np.radians(rng.choice([-5.0, 0.0, 5.0])), np.radians(rng.choice([-5.0, 0.0, 5.0]))
        n = room / 2 - centre
        n = n / np.linalg.norm(n) if np.linalg.norm(n) > 1e-9 else np.array([1.0, 0, 0])
        right = np.cross(up, n)
        right = right / np.linalg.norm(right) if np.linalg.norm(right) > 1e-9 else np.array([0.0, 1.0, 0.0])
        start = centre + distance * unit * (
            np.sin(phi) * up + np.cos(phi) * np.cos(theta) * n + np.cos(phi) * np.sin(theta) * right
        )
        if valid(start):
            break
    positions, rotations = [start], [look_at(start, centre)]
    for _ in range(control_points - 1):

        def draw() -> np.ndarray:
            t, p = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
            step = rng.uniform(0, step_limit) * unit
            return positions[-1] + step * np.array([np.sin(p) * np.cos(t), np.sin(p) * np.sin(t), np.cos(p)])

        positions.append(_first_valid(draw, valid, tries=100))
        turn = Rotation.from_euler("zyx", rng.uniform(-rotation_limit, rotation_limit, 3), degrees=True).as_matrix()
        rotations.append(rotations[-1] @ turn)
    knots = np.linspace(0, 1, control_points)
    times = np.sort(rng.uniform(0, 1, views))
    centres = CubicSpline(knots, np.stack(positions), bc_type="natural")(times)
    slerp = Slerp(knots, Rotation.from_matrix(np.stack(rotations)))
    return CameraPath(
        slerp(times).as_matrix(), centres, float(rng.uniform(45, 70)), (np.stack(positions), np.stack(rotations))
    )


def sample_path(
    mode: str,
    rng: np.random.Generator,
    room: np.ndarray,
    views: int,
    valid: Callable[[np.ndarray], bool],
    objects: np.ndarray,
    **orbit_options: object,
) -> CameraPath:
    """The cameras of one scene; ``orbit_options`` go to :func:`orbit` (distance range, target spread, ...)."""
    if mode == "standard":
        return standard(rng, room, views, valid)
    if mode == "orbit":
        return orbit(rng, room, views, valid, **orbit_options)  # type: ignore[arg-type]
    if mode == "micro":
        return micro(rng, room, views, valid, objects)
    raise ConfigError(f"Unknown camera mode {mode!r}; choose from {', '.join(CAMERA_MODES)}.")
