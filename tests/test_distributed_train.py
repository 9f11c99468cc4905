"""Two-process training with gloo on CPU equals one process with the same global batch.

How it is made deterministic: every chunk of batch_gpu images draws its latents, labels, noise and
augmentations from RNGs seeded by (seed, step, phase, chunk index), and ranks take contiguous blocks
of one shared index stream, so chunk k holds the same images and randomness whichever process runs
it. Gradients are averaged over chunks in both set-ups. Ranks agreeing with each other is asserted
inside training (check_ddp_consistency at every snapshot: a mismatch fails the run).
"""

import os

import pytest
import torch

from test_train_e2e import TINY_ARGS, final_snapshot, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training.snapshot import load_network_pkl

# cifar: no path-length regularisation (its pl_mean is per-process state, as in StyleGAN2-ADA).
ARGS = TINY_ARGS + ['--cfg=cifar', '--kimg=0.016', '--snap=100', '--diffaugment=color,translation,cutout']

@pytest.mark.slow
def test_two_processes_match_one(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # For the spawned processes.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    two, one = str(tmp_path / 'two'), str(tmp_path / 'one')
    result = run_train(['--outdir', two, '--data', data, '--gpus=2'] + ARGS)
    assert result.exit_code == 0, result.output
    log = open(os.path.join(only_run_dir(two), 'log.txt')).read()
    assert 'Distributing across 2 processes' in log
    from torch_utils import misc
    assert f'Process 0: {misc.cpu_threads_per_process(2)} CPU threads (2 processes on this machine)' in log
    result = run_train(['--outdir', one, '--data', data, '--gpus=1', '--batch-gpu=2'] + ARGS)
    assert result.exit_code == 0, result.output

    a = load_network_pkl(final_snapshot(two))
    b = load_network_pkl(final_snapshot(one))
    assert a['resume_state']['cur_nimg'] == b['resume_state']['cur_nimg'] == 16
    for name in ['G', 'D', 'G_ema']:
        pa, pb = dict(a[name].named_parameters()), dict(b[name].named_parameters())
        for key in pa:
            torch.testing.assert_close(pa[key], pb[key], rtol=1e-4, atol=1e-6, msg=f'{name}.{key}')
    torch.testing.assert_close(float(a['augment_pipe'].p), float(b['augment_pipe'].p))

@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:.*RANDOM weights')
def test_two_processes_with_kd(tmp_path, monkeypatch):
    # Spawned processes do not inherit open_clip registrations: the tiny teacher comes as a config file.
    from tiny_clip import register_tiny_clip
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    clip_json = os.path.join(str(tmp_path), register_tiny_clip(str(tmp_path)) + '.json')
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    kd = ['--kd=agg,corr', f'--kd-clip={clip_json}', '--kd-teacher=random', '--cond=1']
    two, one = str(tmp_path / 'two'), str(tmp_path / 'one')
    result = run_train(['--outdir', two, '--data', data, '--gpus=2'] + ARGS + kd)
    assert result.exit_code == 0, result.output
    assert run_train(['--outdir', one, '--data', data, '--gpus=1', '--batch-gpu=2'] + ARGS + kd).exit_code == 0
    a = load_network_pkl(final_snapshot(two))['D']
    b = load_network_pkl(final_snapshot(one))['D']
    assert hasattr(a, 'kd_head')
    for (key, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=f'D.{key}')  # The KD head included.

#----------------------------------------------------------------------------
