"""bias_act: reference path vs naive elementwise math, derivatives, and the plugin vs the reference."""

import math
import os

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act

ACTS = list(bias_act.activation_funcs)
SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772

def _naive_act(act, z, alpha):
    """One scalar through the activation, written out with math."""
    if act == 'linear':   return z
    if act == 'relu':     return max(z, 0.0)
    if act == 'lrelu':    return z if z > 0 else alpha * z
    if act == 'tanh':     return math.tanh(z)
    if act == 'sigmoid':  return 1 / (1 + math.exp(-z))
    if act == 'elu':      return z if z > 0 else math.exp(z) - 1
    if act == 'selu':     return SELU_SCALE * (z if z > 0 else SELU_ALPHA * (math.exp(z) - 1))
    if act == 'softplus': return math.log(1 + math.exp(z))
    if act == 'swish':    return z / (1 + math.exp(-z))
    raise AssertionError(act)

def _naive(x, b, dim, act, alpha, gain, clamp):
    x = x.detach().double().numpy()
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        z = x[idx] + (b[idx[dim]].item() if b is not None else 0.0)
        v = _naive_act(act, z, alpha) * gain
        out[idx] = v if clamp is None else min(max(v, -clamp), clamp)
    return torch.from_numpy(out)

#----------------------------------------------------------------------------

def test_defaults():
    funcs = bias_act.activation_funcs
    assert funcs['lrelu'].def_alpha == pytest.approx(0.2)
    for act in ACTS:
        assert funcs[act].def_gain == pytest.approx(math.sqrt(2) if act in ('relu', 'lrelu') else 1.0)

@pytest.mark.parametrize('act', ACTS)
def test_ref_default_params(act):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 2
    b = torch.randn(3, dtype=torch.float64)
    spec = bias_act.activation_funcs[act]
    y = bias_act.bias_act(x, b, act=act, impl='ref')
    torch.testing.assert_close(y, _naive(x, b, 1, act, spec.def_alpha, spec.def_gain, None))

@pytest.mark.parametrize('act', ACTS)
def test_ref_gain_clamp_other_dim(act):
    x = torch.randn(3, 4, 6, dtype=torch.float64) * 2
    b = torch.randn(6, dtype=torch.float64)
    y = bias_act.bias_act(x, b, dim=2, act=act, alpha=0.3, gain=1.7, clamp=0.8, impl='ref')
    alpha = 0.3 if act == 'lrelu' else None
    torch.testing.assert_close(y, _naive(x, b, 2, act, alpha, 1.7, 0.8))
    assert y.abs().max() <= 0.8

def test_ref_no_bias_and_cpu_cuda_impl_falls_back():
    x = torch.randn(4, 5, dtype=torch.float64)
    expect = _naive(x, None, 1, 'lrelu', 0.2, math.sqrt(2), None)
    torch.testing.assert_close(bias_act.bias_act(x, act='lrelu', impl='ref'), expect)
    torch.testing.assert_close(bias_act.bias_act(x, act='lrelu', impl='cuda'), expect) # CPU -> reference path.

def test_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match='unknown activation'):
        bias_act.bias_act(x, act='gelu2')
    with pytest.raises(ValueError, match='does not fit'):
        bias_act.bias_act(x, torch.zeros(4), dim=1)
    with pytest.raises(ValueError, match='does not fit'):
        bias_act.bias_act(x, torch.zeros(3), dim=2)
    with pytest.raises(ValueError, match='impl'):
        bias_act.bias_act(x, impl='fast')
    with pytest.raises(ValueError, match='clamp'):
        bias_act.bias_act(x, clamp=-1)

@pytest.mark.parametrize('act', ACTS)
def test_ref_gradcheck(act):
    x = (torch.randn(2, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, gain=1.3, clamp=2.0, impl='ref')
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))

#----------------------------------------------------------------------------
# The plugin against the reference path: forward, backward, double backward.

CASES = [dict(act=act) for act in ACTS] + [
    dict(act='lrelu', clamp=0.5), dict(act='tanh', gain=2.0, clamp=1.5), dict(act='swish', clamp=0.7),
    dict(act='lrelu', alpha=-0.5), dict(act='sigmoid', gain=-1.0), dict(act='softplus', clamp=1.0)]

def _derivatives(fn, x, b, w, v, u):
    """y, first derivatives of sum(y*w), and second derivatives of their projection on (v, u)."""
    x, b = x.detach().requires_grad_(), b.detach().requires_grad_()
    y = fn(x, b)
    gx, gb = torch.autograd.grad((y * w).sum(), [x, b], create_graph=True)
    ggx = ggb = None
    if gx.requires_grad or gb.requires_grad: # Not the case for piecewise-linear activations in plain autograd.
        ggx, ggb = torch.autograd.grad((gx * v).sum() + (gb * u).sum(), [x, b], allow_unused=True)
    zero = lambda g, t: torch.zeros_like(t) if g is None else g
    return [y, gx, gb, zero(ggx, x), zero(ggb, b)]

def _compare_plugin(device, dtype, case, dim=1, channels_last=False, atol=1e-4, rtol=1e-4):
    shape = [2, 5, 3, 4]
    x = torch.randn(shape, device=device, dtype=dtype) * 2
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    b = torch.randn(shape[dim], device=device, dtype=dtype)
    w, v = torch.randn_like(x), torch.randn_like(x)
    u = torch.randn_like(b)
    cuda_fn = bias_act._bias_act_cuda(dim=dim, **case).apply
    ref_fn = lambda x, b: bias_act._bias_act_ref(x.double(), b.double(), dim=dim, **case)
    got = _derivatives(cuda_fn, x, b, w, v, u)
    expect = _derivatives(ref_fn, x, b, w.double(), v.double(), u.double())
    for name, g, e in zip(['y', 'dx', 'db', 'ddx', 'ddb'], got, expect):
        scale = max(e.abs().max().item(), 1.0)
        torch.testing.assert_close(g.double(), e, atol=atol * scale, rtol=rtol, msg=lambda m: f'{case} {name}: {m}')
    if channels_last:
        assert got[0].is_contiguous(memory_format=torch.channels_last)

@pytest.fixture(scope='module')
def cpu_plugin():
    """The plugin built for one arch (the kernel compiles to it; its CPU loop runs here)."""
    from torch_utils import custom_ops
    mp = pytest.MonkeyPatch()
    mp.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    try:
        yield custom_ops.build_plugin('bias_act_plugin', sources=['bias_act.cpp', 'bias_act.cu'], headers=['bias_act.h'],
            source_dir=os.path.dirname(bias_act.__file__), extra_cuda_cflags=['--use_fast_math'])
    finally:
        mp.undo()

@pytest.mark.cuda_build
@pytest.mark.slow
@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(f'{k}={v}' for k, v in c.items()))
def test_plugin_math_on_cpu(cpu_plugin, monkeypatch, case):
    # The plugin's CPU loop shares the kernel's math (bias_act.h), so this checks it without a GPU.
    monkeypatch.setattr(bias_act, '_plugin', cpu_plugin)
    _compare_plugin('cpu', torch.float64, case, atol=1e-10, rtol=1e-9)
    _compare_plugin('cpu', torch.float64, case, dim=2, channels_last=True, atol=1e-10, rtol=1e-9)

@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(f'{k}={v}' for k, v in c.items()))
def test_cuda_vs_ref(dtype, case):
    assert bias_act._init(), 'the bias_act plugin did not build; see the warning above'
    tol = {torch.float64: dict(atol=1e-9, rtol=1e-9), torch.float32: dict(atol=1e-4, rtol=1e-4),
        torch.float16: dict(atol=2e-2, rtol=2e-2), torch.bfloat16: dict(atol=8e-2, rtol=8e-2)}[dtype]
    _compare_plugin('cuda', dtype, case, **tol)
    _compare_plugin('cuda', dtype, case, dim=3, channels_last=True, **tol)

@pytest.mark.gpu
def test_cuda_public_api_matches_ref():
    x = torch.randn(4, 8, 5, 5, device='cuda')
    b = torch.randn(8, device='cuda')
    y = bias_act.bias_act(x, b, act='lrelu', clamp=256, impl='cuda')
    torch.testing.assert_close(y, bias_act.bias_act(x, b, act='lrelu', clamp=256, impl='ref'))

#----------------------------------------------------------------------------
