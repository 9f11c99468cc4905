"""custom_ops: cache key, failure handling (warn once, no retry), and a real build of the bias_act plugin."""

import os
import subprocess
import sys
import time
import warnings

import pytest

from torch_utils import custom_ops
from torch_utils.ops import bias_act

OPS_DIR = os.path.dirname(bias_act.__file__)
BIAS_ACT_FILES = dict(sources=['bias_act.cpp', 'bias_act.cu'], headers=['bias_act.h'], source_dir=OPS_DIR,
    extra_cuda_cflags=['--use_fast_math'])

@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private extensions folder and an empty per-process plugin table."""
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path / 'extensions'))
    monkeypatch.setattr(custom_ops, '_plugins', dict())
    monkeypatch.setattr(custom_ops, 'verbosity', 'none')
    return tmp_path

def _count_compiles(monkeypatch):
    calls = []
    compile_fn = custom_ops._compile
    monkeypatch.setattr(custom_ops, '_compile', lambda *args: calls.append(args) or compile_fn(*args))
    return calls

#----------------------------------------------------------------------------

def test_build_dir_key(fresh, monkeypatch):
    src = fresh / 'op.cu'
    hdr = fresh / 'op.h'
    src.write_text('// version 1\n')
    hdr.write_text('// header\n')
    key = lambda **kw: custom_ops.get_build_dir('op_plugin', ['op.cu'], ['op.h'], source_dir=str(fresh), **kw)
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '8.0')
    first = key()
    assert key() == first
    assert os.path.dirname(first) == str(fresh / 'extensions')
    src.write_text('// version 2\n')
    second = key()
    assert second != first
    hdr.write_text('// header changed\n')
    assert key() not in (first, second)
    assert key(extra_cuda_cflags=['-O2']) != key()
    changed_arch = key()
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    assert key() != changed_arch

def test_missing_toolkit_warns_once_and_does_not_retry(fresh, monkeypatch):
    (fresh / 'bogus.cu').write_text('this is not CUDA\n')
    monkeypatch.setenv('CUDA_HOME', str(fresh / 'no-such-cuda'))
    calls = _count_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match='no CUDA toolkit') as record:
        assert custom_ops.get_plugin('bogus_plugin', sources=['bogus.cu'], source_dir=str(fresh)) is None
    message = str(record[0].message)
    assert 'no-such-cuda' in message and 'python -m torch_utils.ops --build' in message
    with warnings.catch_warnings():
        warnings.simplefilter('error') # A second warning would raise here.
        assert custom_ops.get_plugin('bogus_plugin', sources=['bogus.cu'], source_dir=str(fresh)) is None
    assert len(calls) == 1

def test_missing_source_warns(fresh):
    with pytest.warns(RuntimeWarning, match='not found'):
        assert custom_ops.get_plugin('absent_plugin', sources=['absent.cu'], source_dir=str(fresh)) is None

def test_compiler_error_is_quoted(fresh, monkeypatch):
    # A C++-only plugin fails in the host compiler within seconds; its error must reach the warning.
    (fresh / 'broken.cpp').write_text('this_is_not_cpp;\n')
    calls = _count_compiles(monkeypatch)
    with pytest.warns(RuntimeWarning, match='compilation failed') as record:
        assert custom_ops.get_plugin('broken_plugin', sources=['broken.cpp'], source_dir=str(fresh)) is None
    assert 'this_is_not_cpp' in str(record[0].message)
    assert custom_ops.get_plugin('broken_plugin', sources=['broken.cpp'], source_dir=str(fresh)) is None
    assert len(calls) == 1

def test_find_cuda_home_prefers_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('CUDA_HOME', str(tmp_path))
    assert custom_ops.find_cuda_home() == str(tmp_path)
    monkeypatch.delenv('CUDA_HOME')
    monkeypatch.setenv('CUDA_PATH', str(tmp_path / 'other'))
    assert custom_ops.find_cuda_home() == str(tmp_path / 'other')

def test_nvidia_wheel_headers_found():
    dirs = custom_ops.nvidia_include_dirs()
    if not any(os.path.isdir(os.path.join(p, 'nvidia')) for p in sys.path if p):
        pytest.skip('no nvidia-* pip wheels installed')
    assert any(os.path.isfile(os.path.join(d, 'cusparse.h')) for d in dirs)

@pytest.mark.cuda_build
@pytest.mark.slow
def test_build_bias_act_plugin(monkeypatch):
    # Built into the normal cache for one arch, so later runs (and test_bias_act) load it instantly.
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    monkeypatch.setattr(custom_ops, '_plugins', dict())
    module = custom_ops.get_plugin('bias_act_plugin', **BIAS_ACT_FILES)
    assert module is not None, 'the bias_act plugin failed to build; see the warning'
    assert callable(module.bias_act)
    build_dir = custom_ops.get_build_dir('bias_act_plugin', **BIAS_ACT_FILES)
    assert os.path.isfile(os.path.join(build_dir, 'build.ok'))
    t0 = time.time()
    again = custom_ops.build_plugin('bias_act_plugin', **BIAS_ACT_FILES) # From the cache: no compiler run.
    assert callable(again.bias_act) and time.time() - t0 < 10

def test_build_cli_reports_failure(tmp_path):
    env = dict(os.environ, CUDA_HOME=str(tmp_path / 'no-such-cuda'), TORCH_EXTENSIONS_DIR=str(tmp_path / 'extensions'))
    result = subprocess.run([sys.executable, '-m', 'torch_utils.ops', '--build'], env=env, capture_output=True, text=True,
        cwd=os.path.dirname(os.path.dirname(OPS_DIR)), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'no-such-cuda' in result.stdout                  # The toolchain report names the CUDA_HOME it used.
    assert 'bias_act: FAILED' in result.stdout and 'no CUDA toolkit' in result.stdout
