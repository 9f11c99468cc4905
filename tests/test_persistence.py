"""Tests for torch_utils.persistence: pickles carry their module source, load in a process that
cannot import that module, and share the meta format of NVIDIA's stylegan2-ada-pytorch pickles."""

import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

import dnnlib
from torch_utils import persistence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODULE_SRC = textwrap.dedent('''
    import torch
    from torch_utils import persistence

    FACTOR = 2.0

    def _scaled_tanh(x):
        return torch.tanh(x) * FACTOR

    @persistence.persistent_class
    class Block(torch.nn.Module):
        def __init__(self, width, bias=True):
            super().__init__()
            self.fc = torch.nn.Linear(width, width, bias=bias)

        def forward(self, x):
            return _scaled_tanh(self.fc(x))

    @persistence.persistent_class
    class Net(torch.nn.Module):
        def __init__(self, width, depth, options=None):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block(width, bias=True) for _ in range(depth)])
            self.register_buffer('offset', torch.arange(width, dtype=torch.float32))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x + self.offset

    @persistence.persistent_class
    class Deeper(Net):
        def __init__(self, width):
            super().__init__(width, depth=3)

    class Wider(Net):  # Not decorated: must refuse to pickle as a Net.
        pass

    def make_local():
        @persistence.persistent_class
        class Local(torch.nn.Module):
            pass
        return Local()
''')


@pytest.fixture
def temp_module(tmp_path, monkeypatch):
    """Import MODULE_SRC from a temp folder under a unique name; undone after the test."""
    name = f'persist_testmod_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}'
    mod_dir = tmp_path / 'mod'
    mod_dir.mkdir()
    (mod_dir / f'{name}.py').write_text(MODULE_SRC)
    monkeypatch.syspath_prepend(str(mod_dir))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)

#----------------------------------------------------------------------------


def test_init_args_recorded_and_is_persistent(temp_module):
    net = temp_module.Net(4, depth=2, options=dnnlib.EasyDict(a=1))
    assert net.init_args == (4,)
    assert net.init_kwargs == dict(depth=2, options=dict(a=1))
    assert persistence.is_persistent(net) and persistence.is_persistent(temp_module.Net)
    assert not persistence.is_persistent(torch.nn.Linear(1, 1)) and not persistence.is_persistent([])
    assert type(net).__name__ == 'Net' and isinstance(net, torch.nn.Module)
    assert persistence.persistent_class(temp_module.Net) is temp_module.Net  # Idempotent.

    deeper = temp_module.Deeper(2)  # A decorated subclass pickles as itself, with its own init args.
    loaded = pickle.loads(pickle.dumps(deeper))
    assert type(loaded).__name__ == 'Deeper' and len(loaded.blocks) == 3 and loaded.init_args == (2,)
    assert loaded.init_kwargs == {}


def test_unpickle_in_fresh_process_without_the_module(temp_module, tmp_path):
    net = temp_module.Net(4, depth=2)
    x = torch.randn(3, 4)
    with torch.no_grad():
        expected = net(x)
    pkl_path = tmp_path / 'snapshot.pkl'
    with open(pkl_path, 'wb') as f:
        pickle.dump(dict(G=net, extra=7), f)
    torch.save(dict(x=x, expected=expected), tmp_path / 'io.pt')

    script = textwrap.dedent(f'''
        import importlib.util, pickle, sys, torch
        assert importlib.util.find_spec({temp_module.__name__!r}) is None, 'temp module must not be importable'
        with open({str(pkl_path)!r}, 'rb') as f:
            data = pickle.load(f)
        io = torch.load({str(tmp_path / 'io.pt')!r})
        net = data['G']
        with torch.no_grad():
            out = net(io['x'])
        assert data['extra'] == 7
        assert torch.equal(out, io['expected']), (out, io['expected'])
        assert type(net).__module__.startswith('_imported_module_'), type(net).__module__
        assert net.init_args == (4,) and net.init_kwargs == dict(depth=2)
        assert type(net.blocks[0]).__module__ == type(net).__module__  # One module for the whole source.
        print('OK')
    ''')
    empty_cwd = tmp_path / 'cwd'
    empty_cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    result = subprocess.run([sys.executable, '-c', script], cwd=str(empty_cwd), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'OK'


def test_deepcopy_and_meta_format(temp_module):
    net = temp_module.Net(3, depth=1)
    clone = copy.deepcopy(net)
    x = torch.randn(2, 3)
    assert torch.equal(clone(x), net(x))
    assert clone.blocks[0].fc.weight.data_ptr() != net.blocks[0].fc.weight.data_ptr()

    # Read the pickle's meta dict without rebuilding, to pin the stylegan2-ada-pytorch format.
    class MetaCatcher(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ('torch_utils.persistence', '_reconstruct_persistent_obj'):
                return lambda meta: meta
            return super().find_class(module, name)
    meta = MetaCatcher(io.BytesIO(pickle.dumps(net))).load()
    assert sorted(meta.keys()) == ['class_name', 'module_name', 'module_src', 'state', 'type', 'version']
    assert (meta['type'], meta['version'], meta['class_name']) == ('class', 6, 'Net')
    assert meta['module_name'] == temp_module.__name__ and meta['module_src'] == MODULE_SRC
    assert meta['state']['_init_args'] == (3,) and meta['state']['_init_kwargs'] == dict(depth=1)
    assert isinstance(meta['state']['_modules']['blocks'], torch.nn.ModuleList)


class _PickledLike:
    """Pickles exactly like a persistent object of another codebase: reconstruct(meta)."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (persistence._reconstruct_persistent_obj, (self.meta,))


NVIDIA_STYLE_SRC = textwrap.dedent('''
    import torch
    from torch_utils import misc
    from torch_utils import persistence

    @persistence.persistent_class
    class Scale(torch.nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.register_buffer('factor', torch.tensor(float(factor)))

        def forward(self, x):
            misc.assert_shape(x, [None, 2])
            return x * self.factor
''')


def _nvidia_style_meta():
    # The state such a pickle holds: the module's __dict__ incl. the recorded init args.
    ref = torch.nn.Module()
    ref.register_buffer('factor', torch.tensor(3.0))
    state = ref.__getstate__()
    state.update(_init_args=(3.0,), _init_kwargs=dict())
    return dict(type='class', version=6, module_src=NVIDIA_STYLE_SRC, module_name='training.networks',
                class_name='Scale', state=state)


def test_loads_stylegan2_ada_format_pickle():
    obj = pickle.loads(pickle.dumps(dict(G=_PickledLike(_nvidia_style_meta()))))['G']
    assert torch.equal(obj(torch.ones(4, 2)), torch.full([4, 2], 3.0))
    assert obj.init_args == (3.0,) and obj.init_kwargs == {}
    assert persistence.is_persistent(obj)
    again = pickle.loads(pickle.dumps(obj))  # Re-pickles with the same source.
    assert torch.equal(again(torch.ones(1, 2)), torch.full([1, 2], 3.0))


def test_import_hook_patches_source(monkeypatch):
    monkeypatch.setattr(persistence, '_import_hooks', [])
    seen = []

    def hook(meta):
        seen.append(meta.class_name)
        meta.module_src = meta.module_src.replace('return x * self.factor', 'return x * self.factor + 1')
        return meta
    persistence.import_hook(hook)
    obj = pickle.loads(pickle.dumps(_PickledLike(_nvidia_style_meta())))
    assert seen == ['Scale']
    assert torch.equal(obj(torch.ones(1, 2)), torch.full([1, 2], 4.0))
    with pytest.raises(TypeError, match='callable'):
        persistence.import_hook('not a function')


def test_errors(temp_module):
    with pytest.raises(TypeError, match='not picklable'):
        temp_module.Net(2, depth=1, options=lambda: 0)
    with pytest.raises(TypeError, match='top level'):
        temp_module.make_local()
    with pytest.raises(TypeError, match='decorate it'):
        pickle.dumps(temp_module.Wider(2, depth=1))
    with pytest.raises(TypeError, match='expected a class'):
        persistence.persistent_class(3)
    meta = _nvidia_style_meta()
    meta['version'] = 99
    with pytest.raises(ValueError, match='version 99'):
        pickle.loads(pickle.dumps(_PickledLike(meta)))
    meta = _nvidia_style_meta()
    meta['class_name'] = 'Missing'
    with pytest.raises(ValueError, match='Missing'):
        pickle.loads(pickle.dumps(_PickledLike(meta)))

#----------------------------------------------------------------------------
