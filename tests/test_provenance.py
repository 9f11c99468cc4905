"""training.provenance against real throw-away git repositories made in tmp_path."""

import json
import os
import shlex
import subprocess

import numpy as np
import pytest
import torch

from training import provenance

GIT_ID = ['-c', 'user.name=Test', '-c', 'user.email=test@example.com']


def _git(cwd, *args):
    """Run git in cwd, independently of the code under test, and return stdout as text."""
    res = subprocess.run(['git', *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return res.stdout


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch, tmp_path):
    # Keep git from finding a repository above tmp_path, and from reading the user's own settings.
    monkeypatch.setenv('GIT_CEILING_DIRECTORIES', str(tmp_path.parent))
    monkeypatch.setenv('GIT_CONFIG_GLOBAL', os.devnull)
    monkeypatch.setenv('GIT_CONFIG_NOSYSTEM', '1')


@pytest.fixture
def repo(tmp_path):
    """A repository with one commit: a text file, an ignored folder and a binary file."""
    path = tmp_path / 'repo'
    path.mkdir()
    _git(path, 'init', '-q', '-b', 'main')
    (path / 'train.py').write_text('lr = 0.002\nbatch = 8\n')
    (path / 'blob.bin').write_bytes(bytes(range(256)))
    (path / '.gitignore').write_text('runs/\n')
    _git(path, 'add', '.')
    _git(path, 'commit', '-q', '-m', 'first')
    return path


def test_clean_repo(repo):
    info, diff = provenance.collect(argv=['train.py'], repo_dir=repo)
    git = info['git']
    assert 'error' not in git
    assert git['commit'] == _git(repo, 'rev-parse', 'HEAD').strip()
    assert git['branch'] == 'main'
    assert git['dirty'] is False
    assert git['untracked'] == []
    assert git['describe'] == git['commit'][:len(git['describe'])]
    assert diff is None


def test_detached_head_has_no_branch(repo):
    _git(repo, 'checkout', '-q', '--detach')
    info, _ = provenance.collect(argv=[], repo_dir=repo)
    assert info['git']['branch'] is None
    assert info['git']['commit'] == _git(repo, 'rev-parse', 'HEAD').strip()


def test_dirty_repo_diff_is_a_usable_patch(repo, tmp_path):
    commit = _git(repo, 'rev-parse', 'HEAD').strip()
    (repo / 'train.py').write_text('lr = 0.0025\nbatch = 8\n')
    (repo / 'blob.bin').write_bytes(bytes(range(255, -1, -1)))
    (repo / 'notes.txt').write_text('untracked\n')
    (repo / 'runs').mkdir()
    (repo / 'runs' / 'log.txt').write_text('ignored\n')

    info, diff = provenance.collect(argv=['train.py'], repo_dir=repo)
    git = info['git']
    assert git['dirty'] is True
    assert git['describe'].endswith('-dirty')
    assert git['untracked'] == ['notes.txt']  # Ignored files are not listed.
    assert '+lr = 0.0025' in diff
    assert 'GIT binary patch' in diff

    # The written patch, applied to a fresh clone of the commit, rebuilds the dirty tree.
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    provenance.write(run_dir, info, diff)
    clone = tmp_path / 'clone'
    _git(tmp_path, 'clone', '-q', str(repo), str(clone))
    _git(clone, 'checkout', '-q', commit)
    _git(clone, 'apply', '--check', str(run_dir / 'code.diff'))
    _git(clone, 'apply', str(run_dir / 'code.diff'))
    assert (clone / 'train.py').read_text() == (repo / 'train.py').read_text()
    assert (clone / 'blob.bin').read_bytes() == (repo / 'blob.bin').read_bytes()


def test_diff_keeps_bytes_that_are_not_utf8(repo, tmp_path):
    (repo / 'latin1.txt').write_bytes(b'caf\xe9\r\n')
    _git(repo, 'add', 'latin1.txt')
    _git(repo, 'commit', '-q', '-m', 'latin-1 file')
    (repo / 'latin1.txt').write_bytes(b'na\xefve\r\n')
    info, diff = provenance.collect(argv=[], repo_dir=repo)
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    provenance.write(run_dir, info, diff)
    expected = subprocess.run(['git', 'diff', 'HEAD', '--binary'], cwd=repo, capture_output=True, check=True).stdout
    assert (run_dir / 'code.diff').read_bytes() == expected


def test_staged_changes_count(repo):
    (repo / 'train.py').write_text('lr = 0.01\nbatch = 8\n')
    _git(repo, 'add', 'train.py')
    info, diff = provenance.collect(argv=[], repo_dir=repo)
    assert info['git']['dirty'] is True
    assert '+lr = 0.01' in diff


def test_untracked_list_is_capped(repo):
    for i in range(105):
        (repo / f'extra{i:03d}.txt').write_text('x\n')
    info, diff = provenance.collect(argv=[], repo_dir=repo)
    assert len(info['git']['untracked']) == 100
    assert info['git']['untracked_total'] == 105
    assert info['git']['dirty'] is False and diff is None  # Untracked files alone leave the tree clean.


def test_not_a_repository(tmp_path):
    folder = tmp_path / 'plain'
    folder.mkdir()
    info, diff = provenance.collect(argv=[], repo_dir=folder)
    assert set(info['git']) == {'error'}
    assert info['git']['error'] and '\n' not in info['git']['error']
    assert diff is None


def test_git_missing(repo, monkeypatch):
    monkeypatch.setenv('PATH', '')
    info, diff = provenance.collect(argv=[], repo_dir=repo)
    assert 'error' in info['git'] and diff is None


def test_command_line_round_trip():
    argv = ['train.py', '--outdir=my runs', "--desc=it's \"quoted\"", '--kd=agg,corr', '', '$HOME']
    info, _ = provenance.collect(argv=argv)
    assert info['command']['argv'] == argv
    words = shlex.split(info['command']['line'])
    assert words[0] == 'python'
    assert words[1:] == argv


def test_host_env_lists_only_set_variables(monkeypatch):
    monkeypatch.setenv('SLURM_JOB_ID', '12345')
    monkeypatch.delenv('RANK', raising=False)
    info, _ = provenance.collect(argv=[])
    assert info['host']['env']['SLURM_JOB_ID'] == '12345'
    assert 'RANK' not in info['host']['env']


def test_versions():
    info, _ = provenance.collect(argv=[])
    packages = info['packages']
    assert list(packages) == sorted(packages)
    assert all(name == name.lower() for name in packages)
    # Wheels may carry a local tag (+cu130) in one place and not the other.
    assert packages['torch'].split('+')[0] == torch.__version__.split('+')[0]
    assert packages['numpy'] == np.__version__
    assert 'open-clip-torch' in packages  # Normalised from open_clip_torch.
    assert info['torch']['version'] == torch.__version__
    assert isinstance(info['torch']['devices'], list)
    if not torch.cuda.is_available():
        assert info['torch']['devices'] == []


def test_write(repo, tmp_path):
    (repo / 'train.py').write_text('lr = 1\n')
    info, diff = provenance.collect(argv=['train.py', '--gpus=8'], repo_dir=repo)
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    paths = provenance.write(run_dir, info, diff)
    assert paths == [str(run_dir / 'provenance.json'), str(run_dir / 'code.diff')]
    assert sorted(os.listdir(run_dir)) == ['code.diff', 'provenance.json']  # No temporary files left.
    assert json.loads((run_dir / 'provenance.json').read_text()) == info
    assert (run_dir / 'code.diff').read_text() == diff


def test_write_without_diff(tmp_path):
    info, diff = provenance.collect(argv=[], repo_dir=tmp_path)
    assert diff is None
    paths = provenance.write(tmp_path, info, diff)
    assert paths == [str(tmp_path / 'provenance.json')]
    assert sorted(os.listdir(tmp_path)) == ['provenance.json']
    assert json.loads((tmp_path / 'provenance.json').read_text()) == info
