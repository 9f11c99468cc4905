"""Assorted PyTorch helpers: cached constants, shape checks, samplers, parameter copying,
DDP helpers and a module summary table."""

import contextlib
import os
import re
import warnings

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------
# Cached constant tensors: avoids re-uploading the same small tensor every call.

_constant_cache = dict()


def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """Return a cached tensor holding `value` (broadcast to `shape` when given)."""
    value = np.asarray(value)
    if shape is not None:
        shape = tuple(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    if device is None:
        device = torch.device('cpu')
    if memory_format is None:
        memory_format = torch.contiguous_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, torch.device(device), memory_format)
    tensor = _constant_cache.get(key, None)
    if tensor is None:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = tensor.expand(shape)
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor

#----------------------------------------------------------------------------
# CPU threads: several torch processes on one machine must share its cores, not each take them all
# (seven busy torch threads on two cores made a 0.2 s training step take 17 s).

def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # Not on Linux.
        return os.cpu_count() or 1

def cpu_threads_per_process(num_processes, cpus=None):
    """The torch intra-op threads each of num_processes processes on this machine gets: the cores, shared."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, int(num_processes)))

def share_cpu_threads(num_processes):
    """Set this process's torch threads to its share of the cores; returns the count."""
    threads = cpu_threads_per_process(num_processes)
    torch.set_num_threads(threads)
    return threads

#----------------------------------------------------------------------------
# Where fp16 network blocks really run in float16. CUDA only by default (fp16 is slow on CPUs);
# fp16_on_cpu() adds the CPU so that tests run the same mixed-precision branch without a GPU.

_fp16_device_types = {'cuda'}

def fp16_enabled_on(device):
    """True when blocks marked use_fp16 compute in float16 on this device."""
    return torch.device(device).type in _fp16_device_types

@contextlib.contextmanager
def fp16_on_cpu(enable=True):
    """Run fp16 blocks in float16 on the CPU too, inside the with-block."""
    global _fp16_device_types
    saved = _fp16_device_types
    _fp16_device_types = (saved | {'cpu'}) if enable else (saved - {'cpu'})
    try:
        yield
    finally:
        _fp16_device_types = saved

#----------------------------------------------------------------------------


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    """torch.nan_to_num, kept under this name because pickled network code calls it."""
    return torch.nan_to_num(input, nan=nan, posinf=posinf, neginf=neginf, out=out)

#----------------------------------------------------------------------------
# Tracing helpers.


@contextlib.contextmanager
def suppress_tracer_warnings():
    """Silence TracerWarning, which shape asserts trigger during torch.jit.trace."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        yield


def assert_shape(tensor, ref_shape):
    """Assert tensor.shape matches ref_shape; None entries match any size. Works while tracing."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}')
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            with suppress_tracer_warnings():  # Traced comparison of symbolic sizes.
                torch._assert(torch.equal(torch.as_tensor(size), ref_size), f'Wrong size for dimension {idx}')
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(size, torch.as_tensor(ref_size)), f'Wrong size for dimension {idx}: expected {ref_size}')
        elif size != ref_size:
            raise AssertionError(f'Wrong size for dimension {idx}: got {size}, expected {ref_size}')


def profiled_function(fn):
    """Decorator: wrap fn in torch.autograd.profiler.record_function under its own name."""
    def decorator(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    decorator.__name__ = fn.__name__
    decorator.__qualname__ = fn.__qualname__
    decorator.__doc__ = fn.__doc__
    return decorator

#----------------------------------------------------------------------------


class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices; each rank takes every num_replicas-th item.

    With shuffle, the order is a seeded permutation that is slowly perturbed: each step swaps the
    current item with a random one within a window (window_size as a fraction of the dataset).
    """

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
        if len(dataset) <= 0:
            raise ValueError('InfiniteSampler: the dataset is empty')
        if num_replicas <= 0:
            raise ValueError(f'InfiniteSampler: num_replicas must be positive, got {num_replicas}')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'InfiniteSampler: rank must be in [0, {num_replicas}), got {rank}')
        if not 0 <= window_size <= 1:
            raise ValueError(f'InfiniteSampler: window_size must be in [0, 1], got {window_size}')
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size

    def __iter__(self):
        order = np.arange(len(self.dataset))
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))

        idx = 0
        while True:
            i = idx % order.size
            if idx % self.num_replicas == self.rank:
                yield int(order[i])
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            idx += 1

#----------------------------------------------------------------------------
# Parameters and buffers.


def params_and_buffers(module):
    """List of all parameters followed by all buffers."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'params_and_buffers: expected torch.nn.Module, got {type(module).__name__}')
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module):
    """List of (name, tensor) for all parameters followed by all buffers."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'named_params_and_buffers: expected torch.nn.Module, got {type(module).__name__}')
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copy tensors with matching names from src to dst (in place, keeping dst's requires_grad)."""
    if not isinstance(src_module, torch.nn.Module) or not isinstance(dst_module, torch.nn.Module):
        raise TypeError('copy_params_and_buffers: both arguments must be torch.nn.Module')
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name not in src_tensors:
            if require_all:
                raise KeyError(f'copy_params_and_buffers: source has no tensor named "{name}"')
            continue
        if src_tensors[name].shape != tensor.shape:
            raise ValueError(f'copy_params_and_buffers: shape mismatch for "{name}": '
                             f'{tuple(src_tensors[name].shape)} vs {tuple(tensor.shape)}')
        tensor.copy_(src_tensors[name].detach())

@torch.no_grad()
def copy_matching_params_and_buffers(src_module, dst_module):
    """Copy the tensors that match by name and shape; return (those of dst left as they were, each with
    why, and the names of src's tensors that were not used), for transfer learning between networks
    that differ in part (a KD head added or removed, another label embedding)."""
    src_tensors = dict(named_params_and_buffers(src_module))
    dst_names = set()
    left = []
    for name, tensor in named_params_and_buffers(dst_module):
        dst_names.add(name)
        src = src_tensors.get(name)
        if src is None:
            left.append(f'{name} (not in the source)')
        elif src.shape != tensor.shape:
            left.append(f'{name} (shape {list(tensor.shape)}, source {list(src.shape)})')
        else:
            tensor.copy_(src.detach())
    unused = [name for name in src_tensors if name not in dst_names]
    return left, unused

#----------------------------------------------------------------------------
# DDP helpers.


@contextlib.contextmanager
def ddp_sync(module, sync):
    """Skip DDP's gradient all-reduce when sync is False (gradient accumulation rounds)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'ddp_sync: expected torch.nn.Module, got {type(module).__name__}')
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module, ignore_regex=None):
    """Assert every parameter and buffer equals rank 0's copy (NaNs compare equal)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'check_ddp_consistency: expected torch.nn.Module, got {type(module).__name__}')
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world_size = torch.distributed.get_world_size()
    for name, tensor in named_params_and_buffers(module):
        fullname = type(module).__name__ + '.' + name
        if ignore_regex is not None and re.fullmatch(ignore_regex, fullname):
            continue
        tensor = torch.nan_to_num(tensor.detach(), nan=0.0, posinf=0.0, neginf=0.0)  # NaN != NaN otherwise.
        gathered = [torch.empty_like(tensor) for _ in range(world_size)]
        torch.distributed.all_gather(gathered, tensor)
        for other_rank, other in enumerate(gathered):
            if not torch.equal(other, gathered[0]):
                raise AssertionError(f'check_ddp_consistency: "{fullname}" differs between rank 0 and rank {other_rank}')

#----------------------------------------------------------------------------
# Module summary.


def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True):
    """Run module(*inputs) once and print a table of submodules with their parameter counts,
    buffer counts, output shapes and dtypes. Returns the outputs."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'print_module_summary: expected torch.nn.Module, got {type(module).__name__}')
    if isinstance(module, torch.jit.ScriptModule):
        raise TypeError('print_module_summary: TorchScript modules cannot be hooked')
    if not isinstance(inputs, (tuple, list)):
        raise TypeError('print_module_summary: inputs must be a tuple or list of arguments')

    entries = []
    nesting = [0]

    def pre_hook(_mod, _inputs):
        nesting[0] += 1

    def post_hook(mod, _inputs, outputs):
        nesting[0] -= 1
        if nesting[0] <= max_nesting:
            outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            outputs = [t for t in outputs if isinstance(t, torch.Tensor)]
            entries.append(dnnlib.EasyDict(mod=mod, outputs=outputs))

    hooks = [mod.register_forward_pre_hook(pre_hook) for mod in module.modules()]
    hooks += [mod.register_forward_hook(post_hook) for mod in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Each tensor is counted once, by the first module (in execution order) that owns it.
    tensors_seen = set()
    for e in entries:
        e.unique_params = [t for t in e.mod.parameters() if id(t) not in tensors_seen]
        e.unique_buffers = [t for t in e.mod.buffers() if id(t) not in tensors_seen]
        e.unique_outputs = [t for t in e.outputs if id(t) not in tensors_seen]
        tensors_seen |= {id(t) for t in e.unique_params + e.unique_buffers + e.unique_outputs}
    if skip_redundant:
        entries = [e for e in entries if len(e.unique_params) or len(e.unique_buffers) or len(e.unique_outputs)]

    rows = [[type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype']]
    rows += [['---'] * len(rows[0])]
    param_total = 0
    buffer_total = 0
    submodule_names = {mod: name for name, mod in module.named_modules()}
    for e in entries:
        name = '<top-level>' if e.mod is module else submodule_names[e.mod]
        param_size = sum(t.numel() for t in e.unique_params)
        buffer_size = sum(t.numel() for t in e.unique_buffers)
        output_shapes = [str(list(t.shape)) for t in e.outputs]
        output_dtypes = [str(t.dtype).split('.')[-1] for t in e.outputs]
        rows += [[
            name + (':0' if len(e.outputs) >= 2 else ''),
            str(param_size) if param_size else '-',
            str(buffer_size) if buffer_size else '-',
            (output_shapes + ['-'])[0],
            (output_dtypes + ['-'])[0],
        ]]
        for idx in range(1, len(e.outputs)):
            rows += [[name + f':{idx}', '-', '-', output_shapes[idx], output_dtypes[idx]]]
        param_total += param_size
        buffer_total += buffer_size
    rows += [['---'] * len(rows[0])]
    rows += [['Total', str(param_total), str(buffer_total), '-', '-']]

    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    print()
    for row in rows:
        print('  '.join(cell + ' ' * (width - len(cell)) for cell, width in zip(row, widths)))
    print()
    return outputs

#----------------------------------------------------------------------------
