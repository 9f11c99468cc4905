"""conv2d_gradfix and grid_sample_gradfix: values, double backward, and the weight-gradient skip."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix

CONV_CASES = [
    # (transpose, stride, padding, groups)
    (False, 1, 1, 1),
    (False, 2, [0, 1], 2),
    (True, 2, 1, 1),
    (True, 1, 0, 2),
]


def _conv(transpose, x, w, b, stride, padding, groups, native):
    if transpose:
        op = F.conv_transpose2d if native else conv2d_gradfix.conv_transpose2d
    else:
        op = F.conv2d if native else conv2d_gradfix.conv2d
    return op(x, w, b, stride=stride, padding=padding, groups=groups)


def _make(transpose, groups, dtype=torch.float64):
    x = torch.randn(2, 4, 5, 5, dtype=dtype, requires_grad=True)
    w_shape = [4, 6 // groups, 3, 3] if transpose else [6, 4 // groups, 3, 3]
    w = torch.randn(w_shape, dtype=dtype, requires_grad=True)
    b = torch.randn(6, dtype=dtype, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize('case', CONV_CASES)
def test_conv_custom_op_gradcheck(case, monkeypatch):
    transpose, stride, padding, groups = case
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)  # Tiny: gradgradcheck is quadratic.
    w = torch.randn([2, 2 // groups, 2, 2], dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _conv(transpose, x, w, b, stride, padding, groups, native=False)
    torch.testing.assert_close(fn(x, w, b), _conv(transpose, x, w, b, stride, padding, groups, native=True))
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


@pytest.mark.parametrize('case', CONV_CASES)
def test_no_weight_gradients(case, monkeypatch):
    transpose, stride, padding, groups = case
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)
    x, w, b = _make(transpose, groups)
    y = _conv(transpose, x, w, b, stride, padding, groups, native=False)
    with conv2d_gradfix.no_weight_gradients():
        y.square().sum().backward()
    assert w.grad is None
    gx, gb = torch.autograd.grad(_conv(transpose, x, w, b, stride, padding, groups, native=True).square().sum(), [x, b])
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(b.grad, gb)
    assert not conv2d_gradfix.weight_gradients_disabled  # Restored on exit.


def test_r1_style_penalty_matches_native(monkeypatch):
    # Input gradients taken under no_weight_gradients, then a penalty on them backpropagated to the weights:
    # the second-order weight gradient must be unaffected by the skip.
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)

    def penalty_grad(native):
        torch.manual_seed(1)
        x, w, b = _make(False, 2)
        y = torch.tanh(_conv(False, x, w, b, 2, 1, 2, native=native)).sum()
        with conv2d_gradfix.no_weight_gradients(disable=not native):
            gx, = torch.autograd.grad(y, [x], create_graph=True)
        return torch.autograd.grad(gx.square().sum(), [w])[0]

    torch.testing.assert_close(penalty_grad(native=False), penalty_grad(native=True))


def test_context_at_forward_time_selects_custom_op(monkeypatch):
    # With enabled False, a convolution recorded inside the context also skips its weight gradient.
    monkeypatch.setattr(conv2d_gradfix, 'enabled', False)  # The training loop sets it globally.
    x, w, b = _make(False, 1)
    with conv2d_gradfix.no_weight_gradients():
        conv2d_gradfix.conv2d(x, w, b, padding=1).sum().backward()
    assert w.grad is None and x.grad is not None
    conv2d_gradfix.conv2d(x, w, b, padding=1).sum().backward()  # Outside it: native, weight grad present.
    assert w.grad is not None


def test_no_weight_gradients_restores_on_error():
    with pytest.raises(RuntimeError):
        with conv2d_gradfix.no_weight_gradients():
            raise RuntimeError('boom')
    assert not conv2d_gradfix.weight_gradients_disabled
    with conv2d_gradfix.no_weight_gradients(disable=False):
        assert not conv2d_gradfix.weight_gradients_disabled


def test_grid_sample_hand_values():
    # align_corners=False: x=-1 is the left edge of pixel 0, so the image centre averages all four pixels,
    # and the top-left corner sees a quarter of pixel (0, 0) (the rest is zero padding).
    img = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    grid = torch.tensor([[[[0.0, 0.0], [-1.0, -1.0], [0.5, -0.5]]]])
    out = grid_sample_gradfix.grid_sample(img, grid)
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 0.25, 2.0]]]]))


def test_grid_sample_matches_native_and_double_backward():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)
    native = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    torch.testing.assert_close(grid_sample_gradfix.grid_sample(x, grid), native)
    assert torch.autograd.gradcheck(grid_sample_gradfix.grid_sample, (x, grid))
    # Second order w.r.t. the grid is torch's native op: torch 2.14 has it, 2.11 does not; the project never needs it.


def test_grid_sample_bad_shapes():
    with pytest.raises(ValueError, match='grid'):
        grid_sample_gradfix.grid_sample(torch.randn(1, 1, 4, 4), torch.randn(1, 3, 3, 3))


def _sampling_matrices(grid, h, w):
    """A[n] with grid_sample(x, grid)[n, c] = A[n] @ x[n, c].flatten(), from one-hot images."""
    n = grid.shape[0]
    basis = torch.eye(h * w, dtype=grid.dtype).reshape(h * w, 1, h, w)
    return torch.stack([F.grid_sample(basis, grid[i:i + 1].expand(h * w, -1, -1, -1), mode='bilinear', padding_mode='zeros',
        align_corners=False).reshape(h * w, -1).t() for i in range(n)])


def test_grid_sample_input_only_double_backward_matches_a_matrix_product():
    # The Function pair used when only the input needs a gradient (the augment pipe's case) against
    # the same sampling written as explicit matrices, whose derivatives of any order autograd knows.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(2, 4, 7, 2, dtype=torch.float64) * 2.4 - 1.2
    A = _sampling_matrices(grid, 5, 6)
    w = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    matrix = lambda a, g: torch.einsum('nij,ncj->nci', A, a.flatten(2)).reshape(2, 3, 4, 7)
    results = []
    for fn in (grid_sample_gradfix.grid_sample, matrix):
        y = fn(x * 1.5, grid)
        gx, = torch.autograd.grad((y * w).square().sum(), [x], create_graph=True)
        ggx, = torch.autograd.grad(gx.square().sum(), [x])
        results.append((y, gx, ggx))
    for got, expect in zip(*results):
        torch.testing.assert_close(got, expect)
    assert results[0][2].abs().sum() > 0
    fn = lambda a: grid_sample_gradfix.grid_sample(a, grid)
    assert torch.autograd.gradcheck(fn, (x,)) and torch.autograd.gradgradcheck(fn, (x,))
