"""The small CUDA-only choices (device defaults, pinned memory, arch list, device-count checks), run on
the CPU with torch.cuda's answers patched. docs/gpu.md lists every CUDA branch and its test."""

import json

import pytest
import torch

import train
from metrics import metric_utils
from test_train_e2e import TINY_ARGS, make_dataset_zip, run_train
from torch_utils import custom_ops

@pytest.fixture
def fake_gpus(monkeypatch):
    """Two visible "GPUs" of compute capability 9.0 and 8.0 (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda i=0: [(9, 0), (8, 0)][i])

def test_arch_list_from_visible_gpus(fake_gpus, monkeypatch):
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST', raising=False)
    assert custom_ops.arch_list() == '8.0;9.0'
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0a')
    assert custom_ops.arch_list() == '9.0a'

def test_arch_list_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST', raising=False)
    assert custom_ops.arch_list() == custom_ops.DEFAULT_ARCH_LIST

def _dry_run_options(tmp_path, extra):
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    args = ['--outdir', str(tmp_path / 'runs'), '--data', data, '--dry-run'] + [a for a in TINY_ARGS if a != '--device=cpu'] + extra
    result = run_train(args)
    return result

def test_train_on_cuda_pins_memory_and_checks_the_gpu_count(fake_gpus, tmp_path):
    result = _dry_run_options(tmp_path, ['--device=auto'])
    assert result.exit_code == 0, result.output
    text = result.output[result.output.index('{'):result.output.index('\nOutput directory')]
    options = json.loads(text)
    assert options['device'] == 'cuda' and options['data_loader_kwargs']['pin_memory'] is True
    result = _dry_run_options(tmp_path, ['--device=cuda', '--gpus=4'])
    assert result.exit_code != 0 and '--gpus=4, but only 2 CUDA devices are visible' in result.output

def test_train_device_cuda_without_gpu_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    result = _dry_run_options(tmp_path, ['--device=cuda'])
    assert result.exit_code != 0 and 'no CUDA device is visible; use --device=cpu' in result.output
    options = _dry_run_options(tmp_path, ['--device=auto']).output
    assert '"pin_memory": false' in options and '"device": "cpu"' in options

def test_metric_options_default_to_the_ranks_gpu(fake_gpus):
    opts = metric_utils.MetricOptions(G=None, dataset_kwargs={}, num_gpus=2, rank=1)
    assert opts.device == torch.device('cuda', 1)
