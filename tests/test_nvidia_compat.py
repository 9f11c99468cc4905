"""Pickles from NVIDIA's stylegan2-ada-pytorch carry their own network source, which calls torch_utils
by keyword. This test unpickles a persistent object whose source makes those calls, in the pickle
format such snapshots use, and runs it forward and through a double backward. (The ops' numerics are
tested against naive references in their own test files; this one guards the call signatures.)"""

import pickle
import textwrap

import torch

from torch_utils import persistence

# Network source in the style of StyleGAN2-ADA's networks.py / augment.py: keyword calls of the ops.
SNAPSHOT_STYLE_SRC = textwrap.dedent('''
    import numpy as np
    import torch
    from torch_utils import misc
    from torch_utils import persistence
    from torch_utils.ops import bias_act, conv2d_gradfix, conv2d_resample, fma, grid_sample_gradfix, upfirdn2d

    @misc.profiled_function
    def scaled(x, weight):
        misc.assert_shape(x, [None, weight.shape[1], None, None])
        return fma.fma(x, misc.constant(2.0, device=x.device), misc.constant(0.5, device=x.device))

    @persistence.persistent_class
    class Block(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn([channels, channels, 3, 3]))
            self.bias = torch.nn.Parameter(torch.randn([channels]))
            self.register_buffer('resample_filter', upfirdn2d.setup_filter([1, 3, 3, 1]))

        def forward(self, x):
            with misc.suppress_tracer_warnings():
                x = scaled(x, self.weight)
            x = conv2d_resample.conv2d_resample(x=x, w=self.weight.to(x.dtype), f=self.resample_filter, up=2,
                padding=1, flip_weight=False)
            x = bias_act.bias_act(x, self.bias, act='lrelu', gain=np.sqrt(2), clamp=256)
            x = upfirdn2d.downsample2d(x=x, f=self.resample_filter)
            x = upfirdn2d.filter2d(x=x, f=self.resample_filter, padding=0)
            y = conv2d_gradfix.conv2d(input=x, weight=self.weight, padding=1)
            grid = torch.nn.functional.affine_grid(torch.eye(2, 3)[None].repeat(x.shape[0], 1, 1), list(x.shape),
                align_corners=False)
            return grid_sample_gradfix.grid_sample(y, grid)
''')

def _pickled_like_nvidia(channels=2, seed=0):
    """The bytes of a snapshot entry as NVIDIA's persistence writes it: the module source plus __dict__."""
    torch.manual_seed(seed)
    ref = torch.nn.Module()
    ref.weight = torch.nn.Parameter(torch.randn([channels, channels, 3, 3]))
    ref.bias = torch.nn.Parameter(torch.randn([channels]))
    f = torch.tensor([1.0, 3, 3, 1])
    ref.register_buffer('resample_filter', f / f.sum())
    state = ref.__getstate__()
    state.update(_init_args=(channels,), _init_kwargs=dict())
    meta = dict(type='class', version=6, module_src=SNAPSHOT_STYLE_SRC, module_name='training.networks',
        class_name='Block', state=state)

    class Pickled:
        def __reduce__(self):
            return (persistence._reconstruct_persistent_obj, (meta,))
    return pickle.dumps(dict(G_ema=Pickled()))

def test_snapshot_style_source_runs_on_our_ops():
    G = pickle.loads(_pickled_like_nvidia())['G_ema']
    assert persistence.is_persistent(G) and G.init_args == (2,)
    x = torch.randn([3, 2, 8, 8], requires_grad=True)
    y = G(x)
    assert y.shape == (3, 2, 8, 8) and torch.isfinite(y).all()
    # Gradients, including the second derivative R1 needs, flow through every op.
    (grad,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
    grad.square().sum().backward()
    assert G.weight.grad is not None and torch.isfinite(G.weight.grad).all()
