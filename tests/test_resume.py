"""Exact resume: N images, then --resume to 2N, equals 2N uninterrupted (CPU, deterministic)."""

import os

import pytest

import torch

from test_train_e2e import TINY_ARGS, final_snapshot, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training.snapshot import load_network_pkl

# Batches of 2: 4 steps, then 4 more. ADA (p adjusted every 4 steps, its sign statistics carried
# across the break), style mixing, lazy R1 and path-length regularisation (steps 0 and 4, with its
# pl_mean state) are all on in the auto config. Snapshots (and grids) at tick 0 and at the end only.
# ADA target 0 and a quick D make p rise from 0 (3.2e-5 after 8 steps), so a lost or reset p shows.
ARGS = TINY_ARGS + ['--batch=2', '--tick=0.004', '--snap=100', '--diffaugment=color,translation', '--gamma=1', '--target=0',
    '--dlr=0.02']

def _final(outdir):
    return load_network_pkl(final_snapshot(outdir))

def _assert_same(a, b):
    """Networks equal to the last bit (a tolerance of 0.0), and the optimizer moments too when both have them."""
    for name in ['G', 'D', 'G_ema']:
        pa = dict(a[name].named_parameters())
        pb = dict(b[name].named_parameters())
        assert pa.keys() == pb.keys()
        for key in pa:
            torch.testing.assert_close(pa[key], pb[key], rtol=0, atol=0, msg=f'{name}.{key}')
        for (key, ba), (_, bb) in zip(a[name].named_buffers(), b[name].named_buffers()):
            torch.testing.assert_close(ba, bb, rtol=0, atol=0, msg=f'{name}.{key}')
    if a.get('resume_state') and b.get('resume_state'):
        for opt in ['G_opt', 'D_opt']:
            sa, sb = a['resume_state'][opt]['state'], b['resume_state'][opt]['state']
            assert sa.keys() == sb.keys()
            for idx in sa:
                for key in ['exp_avg', 'exp_avg_sq']:
                    torch.testing.assert_close(sa[idx][key], sb[idx][key], rtol=0, atol=0, msg=f'{opt}[{idx}].{key}')

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
    assert float(a['augment_pipe'].p) == float(b['augment_pipe'].p) > 0  # ADA moved p (from 0) in both.
    torch.testing.assert_close(a['resume_state']['loss']['pl_mean'], b['resume_state']['loss']['pl_mean'], rtol=0, atol=0)

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

#----------------------------------------------------------------------------

class _FakeCudaRNG:
    """Stands in for torch.cuda's generator: a byte tensor per device index, as torch.cuda keeps it."""
    def __init__(self, seed):
        self.states = {0: torch.randint(0, 256, [16], dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))}
        self.calls = []

    def get_rng_state(self, device):
        self.calls.append(('get', device))
        return self.states[device.index].clone()

    def set_rng_state(self, state, device):
        self.calls.append(('set', device))
        self.states[device.index] = state.clone()


def test_cuda_rng_state_round_trips_through_a_snapshot(tmp_path):
    """The CUDA branch of the resume state, on the CPU: the accelerator generator's state is saved in
    the snapshot's resume_state and put back on load, with the torch, numpy and python ones."""
    import random
    import numpy as np
    from training.snapshot import load_network_pkl, save_snapshot
    from training.train_state import rng_states as _rng_states, set_rng_states as _set_rng_states
    device = torch.device('cuda', 0)  # Only its type and index are read; no GPU is touched.
    saved_cuda = _FakeCudaRNG(seed=1)
    torch.manual_seed(5); np.random.seed(6); random.seed(7)
    states = _rng_states(device, cuda=saved_cuda)
    expect = (torch.rand(3), np.random.rand(3), random.random())
    from training import networks_stylegan2 as net
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=3, channel_base=16, channel_max=4)
    save_snapshot(str(tmp_path / 'snap.pkl'), dict(G_ema=G, resume_state=dict(rng=states)))
    loaded = load_network_pkl(str(tmp_path / 'snap.pkl'))['resume_state']['rng']

    torch.manual_seed(0); np.random.seed(0); random.seed(0)
    target = _FakeCudaRNG(seed=2)
    assert not torch.equal(target.states[0], saved_cuda.states[0])
    _set_rng_states(loaded, device, cuda=target)
    assert torch.equal(target.states[0], saved_cuda.states[0]) and target.calls == [('set', device)]
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expect[0]) and np.array_equal(got[1], expect[1]) and got[2] == expect[2]
    # The CPU branch neither reads nor writes an accelerator generator.
    cpu_states = _rng_states(torch.device('cpu'), cuda=target)
    assert 'cuda' not in cpu_states and len(target.calls) == 1

@pytest.mark.gpu
def test_real_cuda_rng_state_round_trip():
    from training.train_state import rng_states as _rng_states, set_rng_states as _set_rng_states
    device = torch.device('cuda', torch.cuda.current_device())
    states = _rng_states(device)
    expect = torch.rand(4, device=device)
    torch.cuda.manual_seed(123)
    _set_rng_states(states, device)
    assert torch.equal(torch.rand(4, device=device), expect)
