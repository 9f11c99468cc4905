"""Build and load the CUDA plugins of torch_utils.ops.

A plugin is compiled with ninja through torch.utils.cpp_extension, once per machine: the build
folder is keyed by a hash of the source/header contents, the Python/torch/CUDA versions, the
target GPU architectures and the build options, so an unchanged plugin is loaded from the cache
without a compiler. An fcntl lock on a file in the build folder lets one process build while
others wait. A failed build warns once per plugin and get_plugin() returns None, so the ops
fall back to their pure-PyTorch reference paths.

Architectures: TORCH_CUDA_ARCH_LIST wins when set. Otherwise, with a GPU visible, the plugin is
built for the visible GPUs (torch's default); with none visible, for DEFAULT_ARCH_LIST (Ampere
and Hopper; every extra arch adds about as much compile time again).
"""

import contextlib
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent first builds are then the user's care.
    fcntl = None

#----------------------------------------------------------------------------

verbosity = 'brief'                 # 'none': silent; 'brief': one line per build; 'full': the whole compiler log.
DEFAULT_ARCH_LIST = '8.0;9.0'       # Used when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset.
_BUILD_OK = 'build.ok'              # Marker written after a successful build and load.
_LOCK_NAME = '.plugin.lock'         # Not 'lock': cpp_extension uses that name for its own baton.
_ERROR_TAIL_LINES = 20              # Compiler output lines quoted in the warning.

_plugins = dict()                   # module_name -> loaded module, or None after a failure.

class PluginBuildError(RuntimeError):
    """A plugin could not be built or loaded; the message says why."""

#----------------------------------------------------------------------------
# Environment discovery.

def find_cuda_home():
    """CUDA toolkit root: CUDA_HOME / CUDA_PATH, else nvcc on PATH, else /usr/local/cuda; None if none."""
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which('nvcc')
    if nvcc is not None:
        return _toolkit_root(nvcc)
    if os.path.isdir('/usr/local/cuda'):
        return '/usr/local/cuda'
    return None

def _toolkit_root(nvcc):
    root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    if os.path.isfile(os.path.join(root, 'include', 'cuda_runtime.h')):
        return root
    # A wrapper script (e.g. /usr/local/bin/nvcc running /usr/local/cuda-X/bin/nvcc): nvcc's dry run names its folder.
    try:
        out = subprocess.run([nvcc, '-v', '--dryrun', '-c', 'probe.cu'], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return root
    match = re.search(r'^#\$ _HERE_=(.+)$', out.stdout + out.stderr, flags=re.MULTILINE)
    return os.path.dirname(match.group(1).strip()) if match else root

def nvcc_path(cuda_home):
    """The nvcc executable inside cuda_home, or None."""
    if cuda_home is None:
        return None
    path = os.path.join(cuda_home, 'bin', 'nvcc.exe' if os.name == 'nt' else 'nvcc')
    return path if os.path.isfile(path) else None

def nvcc_version(cuda_home):
    """'13.0' style release string of the toolkit's nvcc, or None."""
    nvcc = nvcc_path(cuda_home)
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None

def nvidia_include_dirs():
    """Include folders of pip's nvidia-* wheels (torch's CUDA headers need e.g. cusparse.h from there)."""
    roots = []
    for entry in sys.path:
        root = os.path.join(entry or '.', 'nvidia')
        if os.path.isdir(root) and os.path.realpath(root) not in [os.path.realpath(r) for r in roots]:
            roots.append(root)
    dirs = []
    for root in roots:
        dirs += sorted(d for d in glob.glob(os.path.join(root, '*', 'include')) if os.path.isdir(d))
    return dirs

def arch_list():
    """The TORCH_CUDA_ARCH_LIST a build uses (see the module docstring)."""
    if os.environ.get('TORCH_CUDA_ARCH_LIST'):
        return os.environ['TORCH_CUDA_ARCH_LIST']
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ';'.join(f'{major}.{minor}' for major, minor in caps)
    return DEFAULT_ARCH_LIST

def _ensure_ninja_on_path():
    # A venv's ninja sits next to its python, which is not on PATH unless the venv is activated.
    if shutil.which('ninja') is None:
        venv_bin = os.path.dirname(sys.executable)
        if os.path.isfile(os.path.join(venv_bin, 'ninja')):
            os.environ['PATH'] = venv_bin + os.pathsep + os.environ.get('PATH', '')

#----------------------------------------------------------------------------
# Build folder.

def _resolve_files(files, source_dir):
    files = [os.path.join(source_dir, f) if source_dir is not None else f for f in (files or [])]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise PluginBuildError(f'source file(s) not found: {", ".join(missing)}')
    return files

def _extensions_root():
    if os.environ.get('TORCH_EXTENSIONS_DIR'):
        return os.environ['TORCH_EXTENSIONS_DIR']
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(cache, 'torch_extensions')

def get_build_dir(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """The cache folder a plugin builds into: changes whenever anything that affects the binary changes."""
    sources = _resolve_files(sources, source_dir)
    headers = _resolve_files(headers, source_dir)
    md5 = hashlib.md5()
    for path in sources + headers:
        md5.update(os.path.basename(path).encode('utf-8') + b'\0')
        with open(path, 'rb') as f:
            md5.update(f.read() + b'\0')
    env = [sys.version_info[:2], torch.__version__, torch.version.cuda, sorted(build_kwargs.items())]
    if any(path.endswith('.cu') for path in sources):
        env.append(arch_list())
    md5.update(repr(env).encode('utf-8'))
    return os.path.join(_extensions_root(), f'{module_name}-{md5.hexdigest()[:16]}')

@contextlib.contextmanager
def _locked(build_dir):
    os.makedirs(build_dir, exist_ok=True)
    with open(os.path.join(build_dir, _LOCK_NAME), 'a') as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

@contextlib.contextmanager
def _patched_env(cuda_home, arch):
    # cpp_extension reads CUDA_HOME once at import and TORCH_CUDA_ARCH_LIST at build time.
    import torch.utils.cpp_extension as cpp_extension  # Heavy: imported only when a plugin is built.
    saved_home, saved_arch = cpp_extension.CUDA_HOME, os.environ.get('TORCH_CUDA_ARCH_LIST')
    try:
        if cuda_home is not None:
            cpp_extension.CUDA_HOME = cuda_home
        if arch is not None:
            os.environ['TORCH_CUDA_ARCH_LIST'] = arch
        yield
    finally:
        cpp_extension.CUDA_HOME = saved_home
        if saved_arch is None:
            os.environ.pop('TORCH_CUDA_ARCH_LIST', None)
        else:
            os.environ['TORCH_CUDA_ARCH_LIST'] = saved_arch

def _library_path(module_name, build_dir):
    return os.path.join(build_dir, module_name + ('.pyd' if os.name == 'nt' else '.so'))

def _import_built(module_name, build_dir):
    spec = importlib.util.spec_from_file_location(module_name, _library_path(module_name, build_dir))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def _compile(module_name, sources, headers, build_dir, build_kwargs):
    import torch.utils.cpp_extension as cpp_extension  # Heavy: imported only when a plugin is built.
    with_cuda = any(path.endswith('.cu') for path in sources)
    cuda_home = arch = None
    if with_cuda:
        cuda_home = find_cuda_home()
        if nvcc_path(cuda_home) is None:
            where = f'CUDA_HOME={cuda_home}' if cuda_home else 'CUDA_HOME, CUDA_PATH, PATH and /usr/local/cuda'
            raise PluginBuildError(f'no CUDA toolkit: no nvcc found via {where}')
        arch = arch_list()
    _ensure_ninja_on_path()

    # Build from copies in the keyed folder, so the binary always matches the hashed contents.
    copies = []
    for path in sources + headers:
        dst = os.path.join(build_dir, os.path.basename(path))
        shutil.copyfile(path, dst)
        if path in sources:
            copies.append(dst)
    includes = [f'-I{d}' for d in nvidia_include_dirs()] if with_cuda else []
    kwargs = dict(build_kwargs)
    kwargs['extra_cflags'] = list(kwargs.get('extra_cflags', [])) + includes
    if with_cuda:
        kwargs['extra_cuda_cflags'] = list(kwargs.get('extra_cuda_cflags', [])) + includes

    if verbosity in ('brief', 'full'):
        print(f'Building PyTorch plugin "{module_name}" in {build_dir} (first use; takes minutes)...', flush=True)
    t0 = time.time()
    with _patched_env(cuda_home, arch):
        try:
            module = cpp_extension.load(name=module_name, sources=copies, build_directory=build_dir,
                verbose=(verbosity == 'full'), **kwargs)
        except Exception as e:
            log = str(e)
            with open(os.path.join(build_dir, 'build.log'), 'w') as f:
                f.write(log)
            tail = '\n'.join(log.strip().splitlines()[-_ERROR_TAIL_LINES:])
            raise PluginBuildError(f'compilation failed in {build_dir} (log: build.log):\n{tail}') from e
    if os.path.isfile(os.path.join(build_dir, 'build.log')):
        os.remove(os.path.join(build_dir, 'build.log')) # From an earlier failed attempt.
    # cpp_extension renames a second variant of a name built in one process (name_v1); cache only the plain name.
    if os.path.isfile(_library_path(module_name, build_dir)):
        with open(os.path.join(build_dir, _BUILD_OK), 'w') as f:
            f.write(f'{time.ctime()}\n')
    if verbosity in ('brief', 'full'):
        print(f'Built "{module_name}" in {time.time() - t0:.0f} s.', flush=True)
    return module

def build_plugin(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """Build (or load from the cache) and return the module; raises PluginBuildError with the cause."""
    build_dir = get_build_dir(module_name, sources, headers, source_dir, **build_kwargs)
    sources = _resolve_files(sources, source_dir)
    headers = _resolve_files(headers, source_dir)
    with _locked(build_dir):
        if os.path.isfile(os.path.join(build_dir, _BUILD_OK)):
            return _import_built(module_name, build_dir)
        return _compile(module_name, sources, headers, build_dir, build_kwargs)

def get_plugin(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """The loaded plugin module, or None when it cannot be built (warns once, then remembers)."""
    if module_name in _plugins:
        return _plugins[module_name]
    try:
        module = build_plugin(module_name, sources, headers, source_dir, **build_kwargs)
    except Exception as e:  # Any failure means: use the reference path, and say why once.
        warnings.warn(f'Cannot build/load the CUDA plugin "{module_name}"; its op falls back to the slower '
            f'pure-PyTorch reference path. Cause: {e}\nFix: install the CUDA toolkit matching torch '
            f'(CUDA {torch.version.cuda}) and set CUDA_HOME to it, then run `python -m torch_utils.ops --build '
            f'--verbose` to see the full log.', RuntimeWarning, stacklevel=2)
        module = None
    _plugins[module_name] = module
    return module

#----------------------------------------------------------------------------
