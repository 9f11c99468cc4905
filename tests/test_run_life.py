"""The life of a run around the training itself: --resume decides continue vs. transfer from the data and
options (and says which), --resume=auto serves the first launch and every requeue, fine-tuning and
adding distillation transfer instead of continuing or crashing, a finished run is not trained again."""

import json
import os

import pytest
import torch

from test_resume import ARGS, _assert_same, _final
from test_train_e2e import make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from torch_utils import misc
from training import networks_stylegan2 as net
from training import resume
from training.run_dir import run_dirs

pytestmark = pytest.mark.filterwarnings('ignore:.*RANDOM weights')

def _log(outdir):
    return open(os.path.join(only_run_dir(outdir), 'log.txt')).read()

def _options(outdir):
    return json.load(open(os.path.join(only_run_dir(outdir), 'training_options.json')))

@pytest.fixture
def two_datasets(tmp_path):
    return make_dataset_zip(tmp_path / 'a.zip', num=6, seed=0), make_dataset_zip(tmp_path / 'b.zip', num=6, seed=1)

#----------------------------------------------------------------------------
# The decision, on options dicts built by hand.

def _opts(**changes):
    c = dict(random_seed=0, batch_size=4, batch_gpu=4, num_gpus=1, total_kimg=10, kimg_per_tick=4, metrics=['fid50k_full'],
        data_fingerprint='sha256:aa', training_set_kwargs=dict(path='/data/a.zip', use_labels=False, xflip=False),
        loss_kwargs=dict(r1_gamma=10.0, diffaugment=''), G_opt_kwargs=dict(lr=0.002, betas=[0, 0.99]),
        kd_kwargs=dict(kd='agg', kd_clip='ViT-B-32', teacher_source='open_clip ViT-B-32 / openai (/home/u/.cache/ViT-B-32.pt)'),
        ada_kimg=100, ema_rampup=None, resume_pkl='/runs/00000-x/network-snapshot-000004.pkl', resume_mode='transfer',
        run_dir='/runs/00001-x', device='cuda', data_loader_kwargs=dict(num_workers=3))
    for key, value in changes.items():
        target = c
        *parents, last = key.split('.')
        for parent in parents:
            target = target[parent]
        target[last] = value
    return c

def test_options_that_may_change_on_a_continuation():
    recorded = _opts()
    requested = _opts(total_kimg=20, kimg_per_tick=1, metrics=[], num_gpus=2, batch_gpu=2, device='cpu', run_dir='/runs/00002-y',
        resume_pkl='/runs/00001-x/network-snapshot-000008.pkl', resume_mode='continue', ada_kimg=500, ema_rampup=0.05,
        **{'data_loader_kwargs.num_workers': 0, 'training_set_kwargs.path': '/scratch/job7/a.zip',  # A moved copy.
        'kd_kwargs.teacher_source': 'open_clip ViT-B-32 / openai (/node7/cache/ViT-B-32.pt)'})
    assert resume.option_differences(recorded, requested) == []

@pytest.mark.parametrize('key, value, flag', [
    ('loss_kwargs.r1_gamma', 1.0, '--gamma (loss_kwargs.r1_gamma): 10.0 -> 1.0'),
    ('G_opt_kwargs.lr', 0.001, '--glr (G_opt_kwargs.lr): 0.002 -> 0.001'),
    ('random_seed', 3, '--seed (random_seed): 0 -> 3'),
    ('batch_size', 8, '--batch (batch_size): 4 -> 8'),
    ('training_set_kwargs.use_labels', True, '--cond (training_set_kwargs.use_labels): False -> True'),
    ('data_fingerprint', 'sha256:bb', '--data: other content (/data/a.zip -> /data/a.zip)'),
    ('kd_kwargs.kd_clip', 'RN50', "--kd (kd_kwargs.kd_clip): 'ViT-B-32' -> 'RN50'"),
])
def test_options_that_make_a_transfer(key, value, flag):
    diffs = resume.option_differences(_opts(), _opts(**{key: value}))
    assert resume.describe_differences(diffs) == flag

def test_added_kd_is_named_once():
    requested = _opts(kd_kwargs=dict(kd='agg,corr', kd_agg_weight=10.0, kd_corr_weight=10.0))
    diffs = resume.option_differences(_opts(kd_kwargs=dict(kd='none')), requested)
    assert diffs == [('kd_kwargs.kd', 'none', 'agg,corr')]  # Not every kd_* option that comes with it.
    assert resume.describe_differences(diffs) == "--kd (kd_kwargs.kd): 'none' -> 'agg,corr'"

def test_runs_older_than_fingerprints_compare_the_data_path():
    old = _opts()
    del old['data_fingerprint']
    assert resume.option_differences(old, _opts()) == []
    assert resume.option_differences(old, _opts(**{'training_set_kwargs.path': '/data/b.zip'}))[0][0] == 'data'

def test_transfer_copies_what_matches_by_name_and_shape():
    def make(c_dim, seed):
        torch.manual_seed(seed)
        return net.Generator(z_dim=4, c_dim=c_dim, w_dim=4, img_resolution=8, img_channels=3, channel_base=64, channel_max=4)
    src, dst = make(c_dim=0, seed=1), make(c_dim=3, seed=2)
    before = {name: t.clone() for name, t in misc.named_params_and_buffers(dst)}
    left, unused = misc.copy_matching_params_and_buffers(src, dst)
    src_tensors = dict(misc.named_params_and_buffers(src))
    for name, tensor in misc.named_params_and_buffers(dst):
        reason = [entry for entry in left if entry.split(' ')[0] == name]
        if name in src_tensors and src_tensors[name].shape == tensor.shape:
            assert not reason and torch.equal(tensor, src_tensors[name]), name
        else:
            assert reason and torch.equal(tensor, before[name]), name  # Left at its initialisation, and listed.
    assert 'mapping.embed.weight (not in the source)' in left
    assert any(entry.startswith('mapping.fc0.weight (shape [4, 8], source [4, 4])') for entry in left)
    assert unused == []

#----------------------------------------------------------------------------
# Through train.py.

def test_finetune_from_own_snapshot_transfers(tmp_path, two_datasets):
    a, b = two_datasets
    pre, ft = str(tmp_path / 'pre'), str(tmp_path / 'ft')
    assert run_train(['--outdir', pre, '--data', a, '--kimg=0.016'] + ARGS).exit_code == 0
    source = os.path.join(only_run_dir(pre), 'network-snapshot-000000.016.pkl')
    result = run_train(['--outdir', ft, '--data', b, '--kimg=0.004', f'--resume={source}', '--glr=1e-12', '--dlr=1e-12'] + ARGS)
    assert result.exit_code == 0, result.output
    assert f'Resume: transfer learning (weights only, progress from 0) from {source} (options differ from its run: --data: ' \
        f'other content ({a} -> {b})' in _log(ft)
    assert 'Continuing at' not in _log(ft)
    options = _options(ft)
    assert (options['resume_mode'], options['resume_pkl'], options['ada_kimg'], options['ema_rampup']) == \
        ('transfer', source, 100, None)
    out, src = _final(ft), _final(pre)
    assert out['resume_state']['cur_nimg'] == 4 and out['resume_state']['batch_idx'] == 2  # Progress from 0 (batch 2).
    assert float(out['augment_pipe'].p) == 0  # ADA p starts afresh, not at the source run's value.
    assert float(src['augment_pipe'].p) > 0
    for (name, p), (_, q) in zip(out['G'].named_parameters(), src['G'].named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)  # B's run starts from A's weights.

def test_adding_kd_on_resume_transfers_with_a_new_head(tmp_path):
    from tiny_clip import register_tiny_clip
    kd = ['--kd=agg,corr', f'--kd-clip={register_tiny_clip(str(tmp_path))}', '--kd-teacher=random']
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    first, second = str(tmp_path / 'first'), str(tmp_path / 'second')
    assert run_train(['--outdir', first, '--data', data, '--kimg=0.008', '--cond=1'] + ARGS).exit_code == 0
    result = run_train(['--outdir', second, '--data', data, '--kimg=0.004', '--cond=1', '--resume', only_run_dir(first)]
        + ARGS + kd)
    assert result.exit_code == 0, result.output
    log = _log(second)
    assert "options differ from its run: --kd (kd_kwargs.kd): 'none' -> 'agg,corr')" in log
    line, = [line for line in log.splitlines() if line.startswith('Transfer: ')]
    head = [name for name, _ in _final(second)['D'].kd_head.named_parameters()]
    assert len(head) > 0 and all(f'D.kd_head.{name} (not in the source)' in line for name in head)
    assert 'G.' not in line and 'G_ema.' not in line  # G is unchanged by --kd: all of it came across.
    # Forcing a continuation names the difference, before any run directory exists.
    forced = str(tmp_path / 'forced')
    result = run_train(['--outdir', forced, '--data', data, '--kimg=0.012', '--cond=1', '--resume', only_run_dir(first),
        '--resume-mode=continue'] + ARGS + kd)
    assert result.exit_code == 2 and "cannot be continued: options differ from its run: --kd (kd_kwargs.kd): 'none' -> " \
        "'agg,corr'" in result.output
    assert not os.path.exists(forced)

def test_continue_mode_names_each_difference(tmp_path, two_datasets):
    a, b = two_datasets
    first, forced = str(tmp_path / 'first'), str(tmp_path / 'forced')
    assert run_train(['--outdir', first, '--data', a, '--kimg=0.008'] + ARGS).exit_code == 0
    args = [x for x in ARGS if not x.startswith('--gamma')]
    result = run_train(['--outdir', forced, '--data', b, '--kimg=0.016', '--gamma=3', '--glr=0.001', '--resume',
        only_run_dir(first), '--resume-mode=continue'] + args)
    assert result.exit_code == 2, result.output
    for part in [f'--data: other content ({a} -> {b})', '--gamma (loss_kwargs.r1_gamma): 1.0 -> 3.0',
            '--glr (G_opt_kwargs.lr): 0.0025 -> 0.001']:
        assert part in result.output, part
    assert not os.path.exists(forced)
    # Forcing a transfer on a run that could continue: weights only.
    result = run_train(['--outdir', forced, '--data', a, '--kimg=0.004', '--resume', only_run_dir(first),
        '--resume-mode=transfer'] + ARGS)
    assert result.exit_code == 0 and 'asked for with --resume-mode=transfer' in _log(forced)
    assert _final(forced)['resume_state']['cur_nimg'] == 4

def test_resume_auto_serves_the_first_launch_and_every_requeue(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    runs, straight = str(tmp_path / 'runs'), str(tmp_path / 'straight')
    command = ['--outdir', runs, '--data', data, '--resume=auto'] + ARGS
    result = run_train(command + ['--kimg=0.008'])
    assert result.exit_code == 0 and f'no run in {runs} to continue; starting a new run' in result.output
    assert _options(runs)['resume_pkl'] is None
    result = run_train(command + ['--kimg=0.016'])  # The requeue: same command, a longer --kimg is allowed.
    assert result.exit_code == 0 and 'Resume (--resume=auto): continuing' in result.output
    assert run_train(['--outdir', straight, '--data', data, '--kimg=0.016'] + ARGS).exit_code == 0
    _assert_same(_final(runs), _final(straight))
    # A run that is done is not trained again, and no run directory is made.
    result = run_train(command + ['--kimg=0.016'])
    assert result.exit_code == 0 and 'The run already reached 0.016 kimg' in result.output
    assert len(run_dirs(runs)) == 2
    # Other options: that run is not continued, and says why; a new run starts.
    result = run_train(command + ['--kimg=0.004', '--seed=5'])
    assert result.exit_code == 0 and 'not continued: --seed (random_seed): 0 -> 5' in result.output
    assert _options(runs)['resume_pkl'] is None and len(run_dirs(runs)) == 3

def test_resume_auto_with_a_source_transfers_first_then_continues(tmp_path, two_datasets):
    a, b = two_datasets
    pre, ft = str(tmp_path / 'pre'), str(tmp_path / 'ft')
    assert run_train(['--outdir', pre, '--data', a, '--kimg=0.008'] + ARGS).exit_code == 0
    command = ['--outdir', ft, '--data', b, f'--resume=auto,{only_run_dir(pre)}'] + ARGS
    assert run_train(command + ['--kimg=0.004']).exit_code == 0
    assert _options(ft)['resume_mode'] == 'transfer'
    result = run_train(command + ['--kimg=0.008'])
    assert result.exit_code == 0 and 'Resume (--resume=auto): continuing' in result.output
    options = _options(ft)
    assert options['resume_mode'] == 'continue' and (options['ada_kimg'], options['ema_rampup']) == (100, None)  # As begun.
    assert _final(ft)['resume_state']['cur_nimg'] == 8

#----------------------------------------------------------------------------
