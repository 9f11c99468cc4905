"""What produced a run: the command, the host, the software versions and the exact code (git commit
plus the uncommitted changes), so a published number can be traced back and rebuilt."""

import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys

import torch

import dnnlib

# Environment variables that change what a run does or where it ran.
_ENV_KEYS = ('CUDA_VISIBLE_DEVICES', 'SLURM_JOB_ID', 'SLURM_ARRAY_JOB_ID', 'SLURM_ARRAY_TASK_ID',
             'SLURM_RESTART_COUNT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'OMP_NUM_THREADS')
_GIT_TIMEOUT_S = 30
_MAX_UNTRACKED = 100
# The repository root: the folder that holds train.py and the `training` package.
_REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _GitError(Exception):
    pass


def _git(*args, cwd):
    """Run one git command in cwd and return its stdout as bytes; any failure is a one-line _GitError."""
    # Variables like GIT_DIR (set inside git hooks) would point git elsewhere than cwd.
    env = {k: v for k, v in os.environ.items() if k not in ('GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE')}
    try:
        res = subprocess.run(['git', *args], cwd=cwd, env=env, capture_output=True, timeout=_GIT_TIMEOUT_S)
    except FileNotFoundError as e:
        raise _GitError(f'git could not be run in {cwd}: {e.strerror}') from None
    except subprocess.TimeoutExpired:
        raise _GitError(f'git {args[0]} took more than {_GIT_TIMEOUT_S} s in {cwd}') from None
    if res.returncode != 0:
        lines = res.stderr.decode('utf-8', 'replace').strip().splitlines() or [f'exit status {res.returncode}']
        raise _GitError(f'git {args[0]} failed in {cwd}: {lines[0]}')
    return res.stdout


def _git_info(repo_dir):
    """Return (info['git'], diff). Raises _GitError when repo_dir is no usable work tree."""
    top = _git('rev-parse', '--show-toplevel', cwd=repo_dir).decode().strip()
    commit = _git('rev-parse', '--verify', 'HEAD', cwd=top).decode().strip()
    try:
        branch = _git('symbolic-ref', '--short', '-q', 'HEAD', cwd=top).decode().strip()
    except _GitError:
        branch = None  # Detached HEAD.
    # `git status` refreshes the index first, so files touched but unchanged do not count as dirty.
    dirty = _git('status', '--porcelain', '--untracked-files=no', cwd=top).strip() != b''
    untracked = [p for p in _git('ls-files', '-z', '--others', '--exclude-standard', cwd=top)
                 .decode('utf-8', 'surrogateescape').split('\0') if p]
    describe = _git('describe', '--always', '--dirty', cwd=top).decode().strip()
    # surrogateescape keeps bytes that are not UTF-8 (e.g. a Latin-1 file) so write() restores them exactly.
    diff = _git('diff', 'HEAD', '--binary', cwd=top).decode('utf-8', 'surrogateescape') if dirty else None
    info = dict(root=top, commit=commit, branch=branch, dirty=dirty, describe=describe,
                untracked=untracked[:_MAX_UNTRACKED], untracked_total=len(untracked))
    return info, diff


def _torch_info():
    """Versions of torch and its CUDA stack, and the visible GPUs; never fails on a CPU-only machine."""
    info = dict(version=torch.__version__, cuda=torch.version.cuda, debug=bool(torch.version.debug),
                cudnn=None, devices=[])
    try:
        if torch.backends.cudnn.is_available():
            info['cudnn'] = torch.backends.cudnn.version()
        if torch.cuda.is_available():
            info['devices'] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as e:  # A broken driver must not stop the run from being recorded.
        info['cuda_error'] = f'{type(e).__name__}: {e}'.splitlines()[0]
    return info


def _packages():
    """{normalised name: version} of every installed distribution, sorted by name."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata['Name'] if dist.metadata is not None else None
        if not name:
            continue  # Broken metadata folder; nothing to record.
        key = re.sub(r'[-_.]+', '-', name).lower()  # PEP 503: 'Open_Clip.Torch' -> 'open-clip-torch'.
        found.setdefault(key, dist.version)  # The first one on sys.path is the one Python imports.
    return dict(sorted(found.items()))


def _host_info():
    return dict(hostname=socket.gethostname(), platform=platform.platform(),
                time_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                env={k: os.environ[k] for k in _ENV_KEYS if k in os.environ})


def collect(argv=None, repo_dir=None):
    """Describe what is producing this run. Returns (info, diff): info is a JSON-ready dict; diff is
    the text of `git diff HEAD --binary` when the work tree has uncommitted changes, else None."""
    argv = [str(a) for a in (sys.argv if argv is None else argv)]
    repo_dir = os.path.abspath(_REPO_DIR if repo_dir is None else repo_dir)
    command = dict(argv=argv, line=shlex.join(['python', *argv]), cwd=os.getcwd(), executable=sys.executable)
    try:
        git, diff = _git_info(repo_dir)
    except _GitError as e:
        git, diff = dict(error=str(e)), None
    info = dict(command=command, host=_host_info(), python=sys.version, torch=_torch_info(),
                packages=_packages(), git=git)
    return info, diff


def write(run_dir, info, diff):
    """Write RUN_DIR/provenance.json and, when diff is not None, RUN_DIR/code.diff, each atomically.
    Returns the paths written."""
    paths = [os.path.join(run_dir, 'provenance.json')]
    with dnnlib.util.atomic_write(paths[0], 'w') as f:
        json.dump(info, f, indent=2)  # ASCII-only (ensure_ascii), so the locale's encoding cannot matter.
        f.write('\n')
    if diff is not None:
        paths.append(os.path.join(run_dir, 'code.diff'))
        # Binary mode: a patch must keep its bytes and line endings exactly, whatever the platform or locale.
        with dnnlib.util.atomic_write(paths[1], 'wb') as f:
            f.write(diff.encode('utf-8', 'surrogateescape'))
    return paths
