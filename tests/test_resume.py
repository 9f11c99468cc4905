"""Exact resume: N images, then --resume to 2N, equals 2N uninterrupted (CPU, deterministic)."""

import os

import torch

from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training.snapshot import load_network_pkl

# Batches of 2: 4 steps, then 4 more. ADA (p adjusted every 4 steps, its sign statistics carried
# across the break), style mixing, lazy R1 and path-length regularisation (steps 0 and 4, with its
# pl_mean state) are all on in the auto config. Snapshots (and grids) at tick 0 and at the end only.
ARGS = TINY_ARGS + ['--batch=2', '--tick=0.004', '--snap=100', '--diffaugment=color,translation', '--gamma=1']

def _final(outdir):
    return load_network_pkl(os.path.join(only_run_dir(outdir), 'network-snapshot-000000.pkl'))

def _assert_same(a, b):
    for name in ['G', 'D', 'G_ema']:
        pa = dict(a[name].named_parameters())
        pb = dict(b[name].named_parameters())
        assert pa.keys() == pb.keys()
        for key in pa:
            torch.testing.assert_close(pa[key], pb[key], rtol=1e-5, atol=1e-6, msg=f'{name}.{key}')
        for (key, ba), (_, bb) in zip(a[name].named_buffers(), b[name].named_buffers()):
            torch.testing.assert_close(ba, bb, rtol=1e-5, atol=1e-6, msg=f'{name}.{key}')

def test_resume_is_exact(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    first, resumed, straight = (str(tmp_path / name) for name in ['first', 'resumed', 'straight'])

    assert run_train(['--outdir', first, '--data', data, '--kimg=0.008'] + ARGS).exit_code == 0
    result = run_train(['--outdir', resumed, '--data', data, '--kimg=0.016', '--resume', only_run_dir(first)] + ARGS)
    assert result.exit_code == 0, result.output
    assert 'Continuing at 0.008 kimg' in open(os.path.join(only_run_dir(resumed), 'log.txt')).read()
    assert run_train(['--outdir', straight, '--data', data, '--kimg=0.016'] + ARGS).exit_code == 0

    a, b = _final(resumed), _final(straight)
    assert a['resume_state']['cur_nimg'] == b['resume_state']['cur_nimg'] == 16
    assert a['resume_state']['batch_idx'] == 8
    _assert_same(a, b)
    torch.testing.assert_close(float(a['augment_pipe'].p), float(b['augment_pipe'].p))
    torch.testing.assert_close(a['resume_state']['loss']['pl_mean'], b['resume_state']['loss']['pl_mean'])

    # And the run that stopped at N differs, so the comparison above is not vacuous.
    early = _final(first)
    assert not all(torch.equal(p, q) for p, q in zip(early['G'].parameters(), a['G'].parameters()))

def test_biggan_resume_with_lecam_is_exact(tmp_path):
    # 4 D steps per G step and LeCam anchors (part of the loss state) must continue exactly too.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, res=32)
    args = ['--cfg=biggan-cifar', '--cbase=2', '--batch=2', '--tick=0.008', '--snap=100', '--lecam=0.3',
        '--metrics=none', '--workers=0', '--device=cpu']
    first, resumed, straight = (str(tmp_path / name) for name in ['first', 'resumed', 'straight'])
    assert run_train(['--outdir', first, '--data', data, '--kimg=0.016'] + args).exit_code == 0
    result = run_train(['--outdir', resumed, '--data', data, '--kimg=0.032', '--resume', only_run_dir(first)] + args)
    assert result.exit_code == 0, result.output
    assert run_train(['--outdir', straight, '--data', data, '--kimg=0.032'] + args).exit_code == 0
    a, b = _final(resumed), _final(straight)
    assert a['resume_state']['cur_nimg'] == 32 and a['resume_state']['batch_idx'] == 4  # 8 reals per step.
    _assert_same(a, b)
    assert a['resume_state']['loss']['lecam_anchors'] == b['resume_state']['loss']['lecam_anchors']
    assert a['resume_state']['loss']['lecam_anchors']['real'] is not None

#----------------------------------------------------------------------------
