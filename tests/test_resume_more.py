"""Resume beyond the basic case: with KD (head, its optimizer state and prompts), --resume=latest, a
snapshot written mid-run, and transfer learning from a pickle without a training state."""

import json
import os
import pickle

import pytest
import torch

from test_resume import ARGS, _assert_same, _final
from test_train_e2e import make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training.run_dir import list_snapshots

pytestmark = pytest.mark.filterwarnings('ignore:.*RANDOM weights')

@pytest.fixture
def kd_args(tmp_path):
    from tiny_clip import register_tiny_clip
    name = register_tiny_clip(str(tmp_path))
    return ['--kd=agg,corr', f'--kd-clip={name}', '--kd-teacher=random', '--kd-agg-p=0.5', '--cond=1']

def test_resume_with_kd_is_exact(tmp_path, kd_args):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    first, resumed, straight = (str(tmp_path / n) for n in ['first', 'resumed', 'straight'])
    assert run_train(['--outdir', first, '--data', data, '--kimg=0.008'] + ARGS + kd_args).exit_code == 0
    result = run_train(['--outdir', resumed, '--data', data, '--kimg=0.016', '--resume', only_run_dir(first)] + ARGS + kd_args)
    assert result.exit_code == 0, result.output
    assert run_train(['--outdir', straight, '--data', data, '--kimg=0.016'] + ARGS + kd_args).exit_code == 0
    a, b = _final(resumed), _final(straight)
    assert hasattr(a['D'], 'kd_head') and hasattr(b['D'], 'kd_head')
    _assert_same(a, b)  # D's parameters include the head: it and its Adam moments came back.
    head_params = sum(1 for _ in a['D'].kd_head.parameters())
    assert len(a['resume_state']['D_opt']['state']) == sum(1 for _ in a['D'].parameters()) > head_params
    options = [json.load(open(os.path.join(only_run_dir(d), 'training_options.json'))) for d in (first, resumed)]
    assert options[0]['kd_kwargs']['prompt_list'] == options[1]['kd_kwargs']['prompt_list']

def test_resume_latest_continues_the_newest_run(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    runs = str(tmp_path / 'runs')
    assert run_train(['--outdir', runs, '--data', data, '--kimg=0.004'] + ARGS).exit_code == 0
    assert run_train(['--outdir', runs, '--data', data, '--kimg=0.008'] + ARGS).exit_code == 0
    newest = sorted(os.listdir(runs))[-1]
    result = run_train(['--outdir', runs, '--data', data, '--kimg=0.012', '--resume=latest'] + ARGS)
    assert result.exit_code == 0, result.output
    run_dir = os.path.join(runs, sorted(os.listdir(runs))[-1])
    log = open(os.path.join(run_dir, 'log.txt')).read()
    assert f'Continuing the run of "{os.path.join(runs, newest)}' in log and 'Continuing at 0.008 kimg' in log

def test_resume_from_a_snapshot_written_mid_run(tmp_path):
    # Snapshots below 1 kimg have names of their own now: resume from the one at N of a 2N run.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    args = [a for a in ARGS if not a.startswith('--snap')] + ['--snap=2']
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    assert run_train(['--outdir', straight, '--data', data, '--kimg=0.016'] + args).exit_code == 0
    names = [os.path.basename(p) for p in list_snapshots(only_run_dir(straight))]
    # Ticks of 2 steps after a 1-step tick 0: snapshots at 2, 10 and 16 images.
    assert names == ['network-snapshot-000000.pkl', 'network-snapshot-000000.010.pkl', 'network-snapshot-000000.016.pkl']
    mid = os.path.join(only_run_dir(straight), names[1])
    result = run_train(['--outdir', resumed, '--data', data, '--kimg=0.016', '--resume', mid] + args)
    assert result.exit_code == 0, result.output
    assert 'Continuing at 0.01 kimg' in open(os.path.join(only_run_dir(resumed), 'log.txt')).read()
    _assert_same(_final(resumed), _final(straight))

def test_transfer_learning_from_a_pickle_without_state(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    source_run = str(tmp_path / 'source')
    assert run_train(['--outdir', source_run, '--data', data, '--kimg=0.008'] + ARGS).exit_code == 0
    snap = _final(source_run)
    snap.pop('resume_state')
    bare = str(tmp_path / 'weights-only.pkl')
    with open(bare, 'wb') as f:
        pickle.dump(snap, f)
    outdir = str(tmp_path / 'transfer')
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.004', f'--resume={bare}', '--glr=1e-12', '--dlr=1e-12']
        + ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    log = open(os.path.join(run_dir, 'log.txt')).read()
    assert f'Resume: transfer learning (weights only, progress from 0) from {bare} (not in a run directory' in log
    assert 'Continuing at' not in log and 'Transfer: ' not in log  # Every tensor matched.
    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['ada_kimg'] == 100 and options['ema_rampup'] is None
    assert options['resume_mode'] == 'transfer' and options['resume_pkl'] == bare
    out = _final(outdir)
    assert out['resume_state']['cur_nimg'] == 4  # Progress starts at 0.
    for (name, p), (_, q) in zip(out['G'].named_parameters(), snap['G'].named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)  # The weights came from the pickle.
