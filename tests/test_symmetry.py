import numpy as np
import pytest
import torch

from pipeline.symmetry import downscale, rotate, rotate_point, rotate_vector, translate


@pytest.fixture
def field():
    return np.random.default_rng(0).normal(size=(3, 2, 8, 8))


def test_quarter_turn_moves_positions_and_vectors_counter_clockwise():
    # A vector pointing +x just right of the centre (row y=1, column x=2 of a 3x3 grid, y up) turns into
    # a vector pointing +y just above the centre.
    u = np.zeros((2, 3, 3))
    u[0, 1, 2] = 1.0
    r = rotate(u, 1)
    assert np.argwhere(r != 0).tolist() == [[1, 2, 1]]
    assert r[1, 2, 1] == 1.0 and r[0, 2, 1] == 0.0


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_group_laws(field, lib):
    u = field if lib == "numpy" else torch.as_tensor(field)
    same = (lambda a, b: np.array_equal(a, b)) if lib == "numpy" else torch.equal
    assert same(rotate(rotate(rotate(rotate(u, 1), 1), 1), 1), u)
    assert same(rotate(u, 4), u) and same(rotate(u, 0), u)
    for a in range(4):
        for b in range(4):
            assert same(rotate(rotate(u, a), b), rotate(u, a + b))
    assert same(rotate(rotate(u, 3), 1), u) and same(rotate(u, -1), rotate(u, 3))


def test_numpy_and_torch_agree(field):
    for k in range(4):
        np.testing.assert_array_equal(rotate(field, k), rotate(torch.as_tensor(field), k).numpy())


def test_rotation_of_points_and_vectors_matches_fields():
    assert rotate_vector((1.0, 0.0), 1) == (-0.0, 1.0)
    assert rotate_point((32.0, 5.0), 1, 64.0) == (59.0, 32.0)
    assert rotate_point((32.0, 5.0), 2, 64.0) == (32.0, 59.0)
    assert rotate_point((32.0, 5.0), 3, 64.0) == (5.0, 32.0)


def test_rotation_rejects_non_square_and_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        rotate(np.zeros((2, 4, 6)), 1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        rotate(np.zeros((3, 4, 4)), 1)


def test_translation_is_a_group_action(field):
    np.testing.assert_array_equal(translate(translate(field, 1, 2), -1, -2), field)
    np.testing.assert_array_equal(translate(field, 8, 8), field)
    np.testing.assert_array_equal(translate(field, 0, 1)[..., 0, 1, 3], field[..., 0, 1, 2])


def test_downscale_shrinks_positions_and_divides_velocity():
    big = np.ones((4, 2, 32, 32), dtype=np.float32) * 3.0
    small = downscale(big, 2.0, (16, 16))
    assert small.shape == (4, 2, 16, 16)
    np.testing.assert_allclose(small, 1.5, rtol=1e-6)
    # a linear ramp in x keeps its shape: value at x is f(2x)/2 sampled at cell centres
    x = np.arange(32) + 0.5
    ramp = np.broadcast_to(x, (2, 32, 32)).astype(np.float64)
    out = downscale(ramp, 2.0, (16, 16))
    np.testing.assert_allclose(out[0, 5, 2:-2], (2 * (np.arange(16) + 0.5))[2:-2] / 2, rtol=1e-6)
