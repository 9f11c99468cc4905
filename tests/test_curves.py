"""curves.png in every run directory, and the command that draws one or several runs."""

import json
import os

import numpy as np
import PIL.Image
import pytest

from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training import curves

def test_every_run_gets_curves_and_runs_compare(tmp_path, capsys):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    for name in ('a', 'b'):
        assert run_train(['--outdir', str(tmp_path / name), '--data', data, '--kimg=0.012'] + TINY_ARGS).exit_code == 0
    run_a, run_b = only_run_dir(str(tmp_path / 'a')), only_run_dir(str(tmp_path / 'b'))
    png = os.path.join(run_a, 'curves.png')
    image = np.asarray(PIL.Image.open(png))
    assert image.shape[0] > 200 and (image < 250).any()  # Something is drawn.
    series = curves.read_run(run_a)
    ticks = [json.loads(line) for line in open(os.path.join(run_a, 'stats.jsonl'))]
    for key in ['Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty', 'Progress/augment']:
        assert key in series and len(series[key][0]) == len(ticks) >= 2, key  # One point per tick.
    np.testing.assert_allclose(series['Loss/G/loss'][1], [t['Loss/G/loss']['mean'] for t in ticks])
    curves.main([run_a, run_b, '--out', str(tmp_path / 'both.png')])
    assert 'Wrote' in capsys.readouterr().out and os.path.isfile(tmp_path / 'both.png')
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path), '--out', str(tmp_path / 'x.png')])  # Not a run directory.

def test_metrics_and_kd_terms_become_panels(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    rows = [{'Progress/kimg': {'mean': k}, 'Loss/kd/agg': {'mean': 1.0 / (k + 1)}, 'Loss/kd/agg_raw': {'mean': 0.0}} for k in (0, 4, 8)]
    (run / 'stats.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"half a line')
    (run / 'metric-fid5k_full.jsonl').write_text(''.join(json.dumps(dict(results=dict(fid5k_full=fid), snapshot_pkl=pkl)) + '\n'
        for fid, pkl in [(30.5, 'network-snapshot-000008.pkl'), (29.0, 'network-snapshot-000008.512.pkl')]))
    names = curves.render([('run', str(run))], str(tmp_path / 'c.png'))
    assert names == ['Loss/kd/agg', 'Metrics/fid5k_full']  # Raw values and gates are left out; the torn line is skipped.
    assert curves.read_run(str(run))['Metrics/fid5k_full'][0].tolist() == [8, 8.512]  # Exact kimg from the names.
