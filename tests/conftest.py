"""Shared pytest set-up: marker-driven skips and small fixtures."""

import os
import shutil

import pytest
import torch


def _nvcc_available():
    cuda_home = os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH') or '/usr/local/cuda'
    return os.path.isfile(os.path.join(cuda_home, 'bin', 'nvcc')) or shutil.which('nvcc') is not None


def pytest_collection_modifyitems(config, items):
    has_gpu = torch.cuda.is_available()
    has_nvcc = _nvcc_available()
    for item in items:
        if 'gpu' in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason='needs a CUDA device; none is visible'))
        if 'cuda_build' in item.keywords and not has_nvcc:
            item.add_marker(pytest.mark.skip(reason='needs nvcc (CUDA toolkit); none found'))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
