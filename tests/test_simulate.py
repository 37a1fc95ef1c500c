import numpy as np
import pytest

from pipeline.simulate import Plume, SimulationError, divergence, simulate
from pipeline.symmetry import rotate, rotate_point, rotate_vector

N = 32


def plume(side=0, b=0.05, x=None, label=""):
    inflow = rotate_point((N / 2 if x is None else x, 4.0), side, float(N))
    return Plume(N, float(N), inflow, 3.0, rotate_vector((0.0, b), side), 0.5, label)


def split_plume(x, left=0.05, right=0.1, label=""):
    """The translation family's physics: buoyancy (0, left) on cells left of the centre line, (0, right) right of it."""
    return Plume(N, float(N), (x, 4.0), 3.0, (0.0, left), 0.5, label, buoyancy_right=(0.0, right), split_x=N / 2)


def mirror_x(u):
    """Mirror image of velocity frames about the vertical centre line: x -> N - x, vx -> -vx."""
    m = np.flip(u, -1).copy()
    m[..., 0, :, :] *= -1
    return m


@pytest.fixture(scope="module")
def batch_run():
    plumes = [plume(x=10.0, label="a"), plume(x=22.0, b=0.08, label="b")]
    return plumes, simulate(plumes, 12, return_faces=True)


def test_shapes_dtype_finite(batch_run):
    _, (frames, _) = batch_run
    assert frames.shape == (2, 12, 2, N, N) and frames.dtype == np.float32
    assert np.isfinite(frames).all()
    assert np.abs(frames[:, -1, 1]).max() > 0.1, "buoyancy should drive an upward flow"


def test_divergence_free_to_solver_tolerance(batch_run):
    _, (_, (vx, vy)) = batch_run
    scale = max(np.abs(vx).max(), np.abs(vy).max())
    assert np.abs(divergence(vx, vy, 1.0)).max() < 1e-10 * scale


def test_divergence_of_known_face_velocities():
    """The divergence the projection removes, by hand: a cell's outflow minus its inflow over its four faces, the
    walls closed (no flow through them), divided by the cell size; independent of the code it checks."""
    h, w, dx = 4, 5, 0.5
    vx, vy = np.zeros((h, w - 1)), np.zeros((h - 1, w))
    vx[2, 1] = 1.0  # flow to the right through the face between cells (2, 1) and (2, 2)
    expected = np.zeros((h, w))
    expected[2, 1], expected[2, 2] = 1 / dx, -1 / dx
    np.testing.assert_array_equal(divergence(vx, vy, dx), expected)
    vy[0, 3] = -2.0  # flow downwards (to lower y) through the face between cells (0, 3) and (1, 3)
    expected[0, 3], expected[1, 3] = -2 / dx, 2 / dx
    np.testing.assert_array_equal(divergence(vx, vy, dx), expected)
    rng = np.random.default_rng(0)
    vx, vy = rng.normal(size=(h, w - 1)), rng.normal(size=(h - 1, w))
    face_x = np.zeros((h, w + 1))
    face_x[:, 1:-1] = vx
    face_y = np.zeros((h + 1, w))
    face_y[1:-1] = vy
    by_hand = np.array([[(face_x[i, j + 1] - face_x[i, j] + face_y[i + 1, j] - face_y[i, j]) / dx for j in range(w)]
                        for i in range(h)])
    np.testing.assert_allclose(divergence(vx, vy, dx), by_hand, rtol=0, atol=1e-14)


def test_deterministic_and_batch_independent(batch_run):
    plumes, (frames, _) = batch_run
    again = simulate(plumes, 12)
    assert np.array_equal(frames, again)
    alone = simulate([plumes[1]], 12)[0]
    np.testing.assert_allclose(alone, frames[1], rtol=0, atol=1e-5 * np.abs(alone).max())


def test_fast_path_matches_phiflow_default_to_round_off(batch_run):
    plumes, (frames, _) = batch_run
    reference = simulate(plumes, 12, method="phiflow")
    assert np.abs(frames - reference).max() <= 1e-8 * np.abs(reference).max()


def test_rotated_inflow_gives_rotated_flow():
    """The symmetry convention matches the physics: a plume from the bottom, turned a quarter counter-
    clockwise, is the plume from the right wall with the same buoyancy magnitude."""
    bottom, right = simulate([plume(side=0)], 10)[0], simulate([plume(side=1)], 10)[0]
    scale = np.abs(right).max()
    assert scale > 0.05
    np.testing.assert_allclose(rotate(bottom, 1), right, rtol=0, atol=1e-5 * scale)
    # and the other directions would be wrong
    assert np.abs(rotate(bottom, 3) - right).max() > 0.1 * scale
    assert np.abs(np.flip(bottom, -2) - right).max() > 0.1 * scale


def test_divergence_names_sim_and_step():
    bad = Plume(N, float(N), (16.0, 4.0), 3.0, (0.0, float("nan")), 0.5, "sim nan-buoyancy")
    with pytest.raises(SimulationError, match=r"sim nan-buoyancy at step 1 of 3"):
        simulate([plume(label="fine"), bad], 3)


def test_batch_must_share_grid():
    other = Plume(48, 48.0, (24.0, 4.0), 3.0, (0.0, 0.1), 0.5, "big")
    with pytest.raises(ValueError, match="share grid"):
        simulate([plume(label="small"), other], 2)


def test_split_buoyancy_fast_path_matches_phiflow_default():
    plumes = [split_plume(12.0, label="left"), split_plume(16.0, label="straddling")]
    fast, reference = simulate(plumes, 12), simulate(plumes, 12, method="phiflow")
    assert np.abs(fast - reference).max() <= 1e-8 * np.abs(reference).max()


def test_split_buoyancy_acts_where_the_smoke_is():
    """A plume straddling the centre line rises faster on its right half; the same plume under the left
    half's buoyancy alone is mirror-symmetric. So the force follows the smoke, not the inflow."""
    split, uniform = simulate([split_plume(16.0), split_plume(16.0, right=0.05)], 15)[:, -1]
    up = np.clip(split[1], 0, None)  # the net vertical flux through a row of a closed box is zero: count the updraft
    assert up[:, N // 2:].sum() > 2 * up[:, :N // 2].sum() > 0
    assert up[:, N // 2:].max() > 1.2 * up[:, :N // 2].max()
    assert np.abs(mirror_x(uniform) - uniform).max() < 1e-6 * np.abs(uniform).max()
    assert np.abs(split[1]).max() > 1.1 * np.abs(uniform[1]).max()


def test_translation_data_break_mirror_symmetry():
    """Two inflows mirrored about x = N/2 give mirror-image flows under uniform buoyancy (the control) but
    not under the split buoyancy of the translation family: the data's translation asymmetry is measurable."""
    a, b = 10.0, N - 10.0
    uni = simulate([split_plume(a, right=0.05), split_plume(b, right=0.05)], 15)
    scale = np.abs(uni).max()
    assert np.abs(mirror_x(uni[0]) - uni[1]).max() < 1e-6 * scale
    split = simulate([split_plume(a), split_plume(b)], 15)
    assert np.abs(mirror_x(split[0]) - split[1]).max() > 0.2 * np.abs(split).max()
    assert np.abs(split[1, -1]).mean() > 1.3 * np.abs(split[0, -1]).mean(), "the right plume feels twice the buoyancy"


def test_split_buoyancy_needs_both_halves():
    with pytest.raises(ValueError, match="buoyancy_right and split_x go together"):
        Plume(N, float(N), (8.0, 4.0), 3.0, (0.0, 0.1), 0.5, "half", buoyancy_right=(0.0, 0.2))
