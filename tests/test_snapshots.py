"""Snapshot names (unique below 1 kimg, ordered by training progress), --keep, and the best snapshot by the
first metric (network-snapshot-best.pkl and best.json, never deleted by --keep)."""

import json
import os

import pytest

from metrics import metric_main
from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training import retention
from training import run_dir as run_names
from training.snapshot import load_network_pkl
from training.weights import weights_path

#----------------------------------------------------------------------------
# Names and order.

def test_names_are_whole_kimg_until_taken_then_exact():
    taken = set()
    names = []
    for nimg in [4, 12, 20, 999, 1000, 1500, 2048, 300064]:
        names.append(run_names.snapshot_name(nimg, taken))
        taken.add(names[-1])
    assert names == ['network-snapshot-000000.pkl', 'network-snapshot-000000.012.pkl', 'network-snapshot-000000.020.pkl',
        'network-snapshot-000000.999.pkl', 'network-snapshot-000001.pkl', 'network-snapshot-000001.500.pkl',
        'network-snapshot-000002.pkl', 'network-snapshot-000300.pkl']
    assert [run_names.snapshot_kimg(n) for n in names] == [0, 0.012, 0.02, 0.999, 1, 1.5, 2, 300]
    assert run_names.progress_name('fakes', '.png', 12, taken={'fakes000000.png'}) == 'fakes000000.012.png'

def test_newest_is_by_progress_not_by_text(tmp_path):
    files = ['network-snapshot-999999.pkl', 'network-snapshot-1000000.pkl', 'network-snapshot-000004.pkl',
        'network-snapshot-000004.500.pkl', 'network-snapshot-000005.pkl', 'network-snapshot-best.pkl',
        'network-snapshot-000003.weights.pt', 'notes.pkl']
    for name in files:
        (tmp_path / name).write_bytes(b'')
    ordered = [os.path.basename(p) for p in run_names.list_snapshots(str(tmp_path))]
    assert ordered == ['network-snapshot-000004.pkl', 'network-snapshot-000004.500.pkl', 'network-snapshot-000005.pkl',
        'network-snapshot-999999.pkl', 'network-snapshot-1000000.pkl']  # As text, 1000000 would sort before 000004.
    assert run_names.latest_snapshot(str(tmp_path)) == str(tmp_path / 'network-snapshot-1000000.pkl')
    assert run_names.latest_snapshot(str(tmp_path / 'absent')) is None

def test_run_dirs_in_number_order(tmp_path):
    for name in ['00010-b', '00002-a', '00100-c', 'notes', '7-x']:
        (tmp_path / name).mkdir()
    (tmp_path / '00003-file').write_text('')
    assert run_names.run_dirs(str(tmp_path)) == ['00002-a', '7-x', '00010-b', '00100-c']
    assert run_names.next_run_dir(str(tmp_path), 'd') == os.path.join(str(tmp_path), '00101-d')

#----------------------------------------------------------------------------
# The best snapshot and --keep, by hand.

def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)

@pytest.mark.parametrize('metric, values, best', [
    ('fid50k_full', [5.0, 3.0, 4.0, float('nan'), 2.5, 2.5], [True, True, False, False, True, False]),
    ('is10k', [5.0, 3.0, 6.0, float('nan'), 6.5, 6.5], [True, False, True, False, True, False]),
    ('pr50k3_full', [0.2, 0.5, 0.4, 0.1, 0.6, 0.6], [True, True, False, False, True, False]),
])
def test_best_follows_the_metrics_direction(tmp_path, metric, values, best):
    keeper = retention.SnapshotKeeper(str(tmp_path), keep=None, log=lambda *_: None)
    got = []
    for idx, value in enumerate(values):
        pkl = _write(tmp_path / run_names.snapshot_name(1000 * (idx + 1), set()), f'snapshot {idx}')
        results = {f'{metric}_precision' if metric.startswith('pr') else metric: value, 'other': -1.0}
        got.append(keeper.scored(pkl, metric, results, cur_nimg=1000 * (idx + 1)))
    assert got == best
    last = max(i for i, b in enumerate(best) if b)
    record = json.load(open(tmp_path / retention.BEST_JSON))
    assert record['value'] == values[last] and record['kimg'] == last + 1 and record['metric'] == metric
    assert record['snapshot'] == f'network-snapshot-{last + 1:06d}.pkl'
    assert record['direction'] == ('min' if metric.startswith('fid') else 'max')
    assert (tmp_path / run_names.BEST_SNAPSHOT).read_text() == f'snapshot {last}'

def test_every_registered_metric_has_a_direction():
    for metric in metric_main.list_valid_metrics():
        expected = 'min' if metric.startswith(('fid', 'kid', 'ppl')) else 'max'
        assert retention.metric_direction(metric) == expected, metric
    with pytest.raises(ValueError, match='no direction known'):
        retention.metric_direction('sharpness')

def test_keep_deletes_the_oldest_and_their_weights_but_never_the_best(tmp_path):
    keeper = retention.SnapshotKeeper(str(tmp_path), keep=2, log=lambda *_: None)
    written = []
    for idx in range(4):
        pkl = _write(tmp_path / run_names.snapshot_name(500 * (idx + 1), set(written)), f'snapshot {idx}')
        _write(weights_path(pkl), f'weights {idx}')
        written.append(os.path.basename(pkl))
        if idx == 0:
            keeper.scored(pkl, 'fid50k_full', {'fid50k_full': 1.0}, cur_nimg=500)
        keeper.written(pkl)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([written[2], written[3], weights_path(written[2]), weights_path(written[3]), run_names.BEST_SNAPSHOT,
        weights_path(run_names.BEST_SNAPSHOT), retention.BEST_JSON])
    assert (tmp_path / run_names.BEST_SNAPSHOT).read_text() == 'snapshot 0'  # Its source is gone; the best stays.
    assert (tmp_path / weights_path(run_names.BEST_SNAPSHOT)).read_text() == 'weights 0'
    with pytest.raises(ValueError, match='keep must be at least 1'):
        retention.SnapshotKeeper(str(tmp_path), keep=0)

#----------------------------------------------------------------------------
# Through train.py: a metric whose values are known, --keep=1.

@pytest.fixture
def scripted_metric(monkeypatch):
    """fid_scripted returns 5, 3, 4, 6 at the run's four snapshots: the best is the second."""
    values = iter([5.0, 3.0, 4.0, 6.0])
    def fid_scripted(_opts):
        return dict(fid_scripted=next(values))
    monkeypatch.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
    metric_main.register_metric(fid_scripted, detectors=())

def test_training_keeps_the_newest_and_the_best(tmp_path, scripted_metric):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    outdir = str(tmp_path / 'runs')
    args = [a for a in TINY_ARGS if not a.startswith('--metrics')] + ['--metrics=fid_scripted', '--keep=1', '--weights-only=1']
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.024'] + args)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    assert sorted(f for f in os.listdir(run_dir) if f.startswith('network-snapshot-')) == [
        'network-snapshot-000000.024.pkl', 'network-snapshot-000000.024.weights.pt', 'network-snapshot-best.pkl',
        'network-snapshot-best.weights.pt']
    best = json.load(open(os.path.join(run_dir, 'best.json')))
    assert (best['snapshot'], best['value'], best['kimg']) == ('network-snapshot-000000.012.pkl', 3.0, 0.012)
    assert load_network_pkl(os.path.join(run_dir, 'network-snapshot-best.pkl'))['resume_state']['cur_nimg'] == 12
    log = open(os.path.join(run_dir, 'log.txt')).read()
    assert 'Best so far: fid_scripted 3 at 0.012 kimg' in log and 'Removed network-snapshot-000000.012.pkl (--keep=1)' in log
    records = [json.loads(line) for line in open(os.path.join(run_dir, 'metric-fid_scripted.jsonl'))]
    assert [r['snapshot_pkl'] for r in records] == ['network-snapshot-000000.pkl', 'network-snapshot-000000.012.pkl',
        'network-snapshot-000000.020.pkl', 'network-snapshot-000000.024.pkl']  # Each metric names its own file.

#----------------------------------------------------------------------------
