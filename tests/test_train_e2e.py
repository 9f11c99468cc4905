"""End-to-end training on CPU through train.py (in-process with click's CliRunner), tiny settings."""

import glob
import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import train
from training import loss as loss_module
from training.run_dir import latest_snapshot, list_snapshots
from training.snapshot import load_network_pkl

#----------------------------------------------------------------------------
# Shared with the other training tests (imported from this module).

@pytest.fixture(autouse=True)
def one_thread():
    # Two intra-op threads on a loaded 2-core machine spin against each other (50x slowdowns seen).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

TINY_ARGS = ['--cbase=256', '--cmax=32', '--map-depth=2', '--mbstd-group=2', '--batch=4', '--tick=0.008',
    '--metrics=none', '--workers=0', '--snap=1', '--device=cpu']

def make_dataset_zip(path, num=8, res=16, num_classes=None, seed=0, wide=False):
    """PNG images plus dataset.json, the layout dataset_tool.py writes (wide: twice as wide as high)."""
    rnd = np.random.RandomState(seed)
    labels = []
    with zipfile.ZipFile(path, 'w') as z:
        for i in range(num):
            buf = io.BytesIO()
            PIL.Image.fromarray(rnd.randint(0, 256, size=[res, res * (2 if wide else 1), 3], dtype=np.uint8)).save(buf, format='PNG')
            name = f'00000/img{i:08d}.png'
            z.writestr(name, buf.getvalue())
            labels.append([name, i % num_classes] if num_classes else None)
        meta = dict(labels=labels if num_classes else None,
            class_names=[f'class{k}' for k in range(num_classes)] if num_classes else None)
        z.writestr('dataset.json', json.dumps(meta))
    return str(path)

def run_train(args):
    result = CliRunner().invoke(train.main, args, catch_exceptions=False)
    return result

def only_run_dir(outdir):
    dirs = sorted(glob.glob(os.path.join(outdir, '0*')))
    assert len(dirs) >= 1, f'no run directory in {outdir}'
    return dirs[-1]

def final_snapshot(outdir):
    """The snapshot with the most training progress in the newest run directory of outdir."""
    return latest_snapshot(only_run_dir(outdir))

#----------------------------------------------------------------------------

def test_train_produces_run_dir(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    outdir = str(tmp_path / 'runs')
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.016', '--diffaugment=translation,cutout'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    assert os.path.basename(run_dir).startswith('00000-tiny-auto-kimg0.016-batch4-ada-da-translation-cutout')
    for name in ['training_options.json', 'log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png', 'fakes000000.png',
                 'fakes000000.012.png', 'fakes000000.016.png', 'network-snapshot-000000.pkl', 'network-snapshot-000000.012.pkl',
                 'network-snapshot-000000.016.pkl', 'provenance.json']:
        assert os.path.isfile(os.path.join(run_dir, name)), name

    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['kd_kwargs'] == {'kd': 'none'}
    assert options['batch_size'] == 4 and options['total_kimg'] == 0.016
    assert options['loss_kwargs']['diffaugment'] == 'translation,cutout'
    assert options['ada_target'] == 0.6
    assert options['training_set_kwargs']['subset'] is None

    # 4 steps of 4 images: ticks end after steps 1, 3 and 4.
    ticks = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]
    assert [t['Progress/kimg']['mean'] for t in ticks] == pytest.approx([0.004, 0.012, 0.016])
    for key in ['Loss/G/loss', 'Loss/D/loss', 'Loss/scores/real', 'Loss/signs/real', 'Loss/r1_penalty', 'Loss/pl_penalty']:
        assert key in ticks[-1], key
    for phase in ['Gmain', 'Greg', 'Dmain', 'Dreg']:  # Per-phase times, from wall-clock events on the CPU.
        assert ticks[0]['Timing/' + phase]['mean'] > 0, phase
    log = open(os.path.join(run_dir, 'log.txt')).read()
    assert 'tick 2' in log and 'sec/kimg' in log and 'cpumem' in log

    reals = PIL.Image.open(os.path.join(run_dir, 'reals.png'))
    assert reals.size == (8 * 16, 8 * 16)  # CPU grids are capped at 8x8.

    data = load_network_pkl(os.path.join(run_dir, 'network-snapshot-000000.016.pkl'))  # The final one.
    G = data['G_ema']
    assert not any(p.requires_grad for p in G.parameters())
    with torch.no_grad():
        img = G(torch.randn([2, G.z_dim]), torch.zeros([2, 0]))
    assert img.shape == (2, 3, 16, 16)
    state = data['resume_state']
    assert state['cur_nimg'] == 16 and state['batch_idx'] == 4 and state['cur_tick'] == 3
    assert set(state) >= {'G_opt', 'D_opt', 'sampler_pos', 'augment_p', 'loss', 'rng'}

def test_dry_run_writes_nothing(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    outdir = str(tmp_path / 'runs')
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=1', '--dry-run', '--kd=agg,corr', '--subset=4',
        '--subset-seed=3'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    assert 'Dry run' in result.output and '"kd_agg_weight": 10.0' in result.output
    assert '"subset": 4' in result.output and '"subset_seed": 3' in result.output
    assert not os.path.exists(outdir)

@pytest.mark.parametrize('extra, message', [
    (['--p=0.5'], '--p can only be specified with --aug=fixed'),
    (['--aug=fixed'], '--aug=fixed requires --p'),
    (['--aug=noaug', '--augpipe=bgc'], '--augpipe cannot be specified with --aug=noaug'),
    (['--cond=1'], 'requires labels'),
    (['--kd=agg,foo'], '--kd: expected'),
    (['--kd-agg-weight=5'], 'has no effect without --kd'),
    (['--kd=corr', '--kd-agg-p=0.5'], 'unless --kd includes agg'),
    (['--diffaugment=color,zoom'], 'Unknown DiffAugment policy'),
    (['--mbstd-group=4', '--batch=6'], 'multiple of the minibatch-std group size'),
    (['--subset=100'], 'out of range'),
    (['--resume=latest'], 'no run directory with a network snapshot'),
])
def test_invalid_options(tmp_path, extra, message):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    outdir = str(tmp_path / 'runs')
    args = ['--outdir', outdir, '--data', data, '--kimg=1'] + TINY_ARGS + extra
    result = CliRunner().invoke(train.main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not os.path.exists(outdir)

def test_nonfinite_gradients_stop_the_run(tmp_path, monkeypatch):
    # A NaN gain makes every gradient NaN: the run must stop after a few steps with a clear
    # message, keeping the (finite) snapshots of ticks 0 and 1.
    original = loss_module.StyleGAN2Loss.accumulate_gradients
    def nan_gain(self, **kwargs):
        return original(self, **dict(kwargs, gain=float('nan')))
    monkeypatch.setattr(loss_module.StyleGAN2Loss, 'accumulate_gradients', nan_gain)
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    outdir = str(tmp_path / 'runs')
    result = CliRunner().invoke(train.main, ['--outdir', outdir, '--data', data, '--kimg=0.1'] + TINY_ARGS)
    assert result.exit_code == 1, result.output
    assert 'NaN or inf for 4 consecutive steps' in result.output
    pkls = list_snapshots(only_run_dir(outdir))
    assert [os.path.basename(p) for p in pkls] == ['network-snapshot-000000.pkl', 'network-snapshot-000000.012.pkl']
    assert f'the last good snapshot is {pkls[-1]}' in result.output
    for pkl in pkls:  # Sanitised gradients: the weights on disk stay finite.
        G = load_network_pkl(pkl)['G']
        assert all(torch.isfinite(p).all() for p in G.parameters())

@pytest.mark.filterwarnings('ignore:.*RANDOM weights')
def test_train_with_kd_on_conditional_data(tmp_path):
    from tiny_clip import register_tiny_clip
    clip_dir = tmp_path / 'clip'
    clip_dir.mkdir()
    name = register_tiny_clip(str(clip_dir))
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    outdir = str(tmp_path / 'runs')
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.008', '--cond=1', '--kd=agg,corr', f'--kd-clip={name}',
        '--kd-teacher=random'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    assert os.path.basename(run_dir).startswith('00000-tiny-cond-auto-kimg0.008-batch4-ada-kd-agg-corr')
    assert json.load(open(os.path.join(run_dir, 'training_options.json')))['kd_kwargs']['kd_clip'] == name
    last = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))][-1]
    for key in ['Loss/kd/agg', 'Loss/kd/corr_real', 'Loss/kd/corr_fake']:
        assert np.isfinite(last[key]['mean']), key
    D = load_network_pkl(os.path.join(run_dir, 'network-snapshot-000000.pkl'))['D']
    assert hasattr(D, 'kd_head')  # The head is part of D, saved and trained with it.

def test_train_with_kd_in_the_cuda_precision_on_cpu(tmp_path):
    # What a CUDA run does by default: fp16 blocks with conv_clamp, and the fp16 CLIP teacher (--kd-div too).
    from tiny_clip import register_tiny_clip
    from torch_utils import misc
    name = register_tiny_clip(str(tmp_path))
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    outdir = str(tmp_path / 'runs')
    with misc.fp16_on_cpu():
        result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.008', '--cond=1', '--kd=agg,corr', f'--kd-clip={name}',
            '--kd-teacher=random', '--kd-clip-precision=fp16', '--kd-div=1'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['G_kwargs']['num_fp16_res'] > 0 and options['G_kwargs']['conv_clamp'] == 256
    last = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))][-1]
    for key in ['Loss/G/loss', 'Loss/D/loss', 'Loss/kd/agg', 'Loss/kd/corr_real', 'Loss/kd/div', 'Loss/r1_penalty']:
        assert np.isfinite(last[key]['mean']), key
    assert options['kd_kwargs']['kd_clip_precision'] == 'fp16'
    assert f'CLIP {name} (RANDOM weights, fp16)' in open(os.path.join(run_dir, 'log.txt')).read()

def test_lecam_with_stylegan2(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    outdir = str(tmp_path / 'runs')
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.008', '--lecam=0.3'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    assert json.load(open(os.path.join(run_dir, 'training_options.json')))['loss_kwargs']['lecam'] == 0.3
    last = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))][-1]
    assert np.isfinite(last['Loss/lecam_penalty']['mean'])

#----------------------------------------------------------------------------

def test_missing_metric_detector_stops_before_training(tmp_path, monkeypatch):
    import dnnlib
    def offline(url, **_kwargs):
        raise dnnlib.util.OpenURLError(f'cannot reach {url}')
    monkeypatch.setattr(dnnlib.util, 'open_url', offline)
    monkeypatch.delenv('KD_DETECTOR_DIR', raising=False)
    data = make_dataset_zip(tmp_path / 'tiny.zip')
    outdir = str(tmp_path / 'runs')
    args = ['--outdir', outdir, '--data', data, '--kimg=0.008'] + [a for a in TINY_ARGS if not a.startswith('--metrics')]
    result = CliRunner().invoke(train.main, args + ['--metrics=fid50k_full', f'--detector-dir={tmp_path}'])
    assert result.exit_code == 1, result.output
    assert 'inception-2015-12-05.pt' in result.output and '--metrics=none' in result.output
    assert not os.path.exists(outdir)  # Stopped before the run directory was made.
