"""curves.png in every run directory, and the command that draws one or several runs: the plotted data is
checked against stats.jsonl and metric-*.jsonl through the matplotlib Figure, not through pixels."""

import json
import os

import numpy as np
import PIL.Image
import pytest

from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training import curves

def _ticks(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]

def _panels(fig):
    """{title: Axes} of the panels drawn (empty grid cells are switched off)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.axison}

def _line(ax, run_label, name):
    found = [line for line in ax.get_lines() if line.get_label() == f'{run_label} | {name}']
    assert len(found) == 1, (run_label, name, [line.get_label() for line in ax.get_lines()])
    return found[0]

def _legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]

def _write_run(run_dir, rows, metrics=()):
    """A run directory by hand: stats.jsonl rows (then a torn line, as while a tick is being written) and one
    metric file of (value, snapshot name) pairs."""
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, 'stats.jsonl'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows) + '{"half a line')
    if metrics:
        with open(os.path.join(run_dir, 'metric-fid5k_full.jsonl'), 'w') as f:
            f.write(''.join(json.dumps(dict(results=dict(fid5k_full=fid), snapshot_pkl=pkl)) + '\n' for fid, pkl in metrics))
    return str(run_dir)

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('curves')
    data = make_dataset_zip(tmp / 'tiny.zip', num=4)
    for name, extra in (('a', []), ('b', ['--gamma=3'])):
        assert run_train(['--outdir', str(tmp / name), '--data', data, '--kimg=0.012'] + TINY_ARGS + extra).exit_code == 0
    return tmp, only_run_dir(str(tmp / 'a')), only_run_dir(str(tmp / 'b'))

def test_every_run_gets_curves_of_its_stats(two_runs):
    tmp, run_a, _run_b = two_runs
    image = np.asarray(PIL.Image.open(os.path.join(run_a, 'curves.png')))
    assert image.shape[0] > 200 and (image < 250).any()  # Something is drawn.
    series = curves.read_run(run_a)
    ticks = _ticks(run_a)
    for key in ['Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty', 'Progress/augment']:
        assert key in series and len(series[key][0]) == len(ticks) >= 2, key  # One point per tick.
    np.testing.assert_allclose(series['Loss/G/loss'][1], [t['Loss/G/loss']['mean'] for t in ticks])

    # The figure: one panel per group with axes, ticks and kimg on x; the lines are stats.jsonl's values.
    label = os.path.basename(run_a)
    fig = curves.render([(label, run_a)], str(tmp / 'a.png'))
    panels = _panels(fig)
    assert list(panels) == ['G and D losses', 'Regularisation penalties', 'Augmentation']
    kimg = [t['Progress/kimg']['mean'] for t in ticks]
    for title, names in [('G and D losses', ['Loss/G/loss', 'Loss/D/loss']),
            ('Regularisation penalties', ['Loss/r1_penalty', 'Loss/pl_penalty']), ('Augmentation', ['Progress/augment'])]:
        ax = panels[title]
        assert 'kimg' in ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.get_xticks()) >= 2 and len(ax.get_yticks()) >= 2
        assert len(ax.get_lines()) == len(names)
        for name in names:
            line = _line(ax, label, name)
            np.testing.assert_array_equal(line.get_xdata(), kimg)
            np.testing.assert_array_equal(line.get_ydata(), [t[name]['mean'] for t in ticks])
        if len(names) > 1:
            assert _legend_texts(ax.get_legend()) == names  # Which line style is which statistic.
    assert _legend_texts(fig.legends[0]) == [label]

def test_two_runs_overlaid_with_a_legend_of_their_names(two_runs, capsys):
    tmp, run_a, run_b = two_runs
    out = tmp / 'both.png'
    curves.main([run_a, run_b, '--out', str(out)])
    assert 'Wrote' in capsys.readouterr().out and PIL.Image.open(out).format == 'PNG'
    names = [os.path.basename(run_a), os.path.basename(run_b)]
    fig = curves.render(list(zip(names, [run_a, run_b])), str(tmp / 'again.png'))
    assert _legend_texts(fig.legends[0]) == names
    ax = _panels(fig)['G and D losses']
    assert len(ax.get_lines()) == 4  # G and D of each run.
    for name, run_dir in zip(names, [run_a, run_b]):
        ticks = _ticks(run_dir)
        line = _line(ax, name, 'Loss/D/loss')
        np.testing.assert_array_equal(line.get_ydata(), [t['Loss/D/loss']['mean'] for t in ticks])
    colours = {_line(ax, name, 'Loss/G/loss').get_color() for name in names}
    assert len(colours) == 2  # A colour per run.

def test_the_command_writes_the_file_and_refuses_a_folder_that_is_no_run(two_runs, tmp_path, capsys):
    _tmp, run_a, _run_b = two_runs
    out = tmp_path / 'one.png'
    curves.main([run_a, '--out', str(out)])
    assert f'Wrote {out} (3 panels, 1 runs)' in capsys.readouterr().out
    assert np.asarray(PIL.Image.open(out)).shape[:2] == (int(curves.DPI * (curves.PANEL_INCHES[1] + 0.4)),
        int(curves.DPI * curves.PANEL_INCHES[0] * 3))
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path), '--out', str(tmp_path / 'x.png')])  # Not a run directory.
    assert not os.path.exists(tmp_path / 'x.png')

def test_metrics_and_kd_terms_become_panels(tmp_path):
    rows = [{'Progress/kimg': {'mean': k}, 'Loss/kd/agg': {'mean': 1.0 / (k + 1)}, 'Loss/kd/agg_raw': {'mean': 0.0},
        'Loss/kd/agg_gate': {'mean': 1.0}} for k in (0, 4, 8)]
    metrics = [(30.5, 'network-snapshot-000008.pkl'), (29.0, 'network-snapshot-000008.512.pkl')]
    run = _write_run(tmp_path / 'run', rows, metrics=metrics)
    fig = curves.render([('run', run)], str(tmp_path / 'c.png'))
    panels = _panels(fig)
    # Raw values and gates are left out; the torn line is skipped.
    assert list(panels) == ['Knowledge distillation', 'Metric: fid5k_full']
    assert [line.get_label() for line in panels['Knowledge distillation'].get_lines()] == ['run | Loss/kd/agg']
    fid = _line(panels['Metric: fid5k_full'], 'run', 'Metrics/fid5k_full')
    assert fid.get_xdata().tolist() == [8, 8.512] and fid.get_ydata().tolist() == [30.5, 29.0]  # Exact kimg from the names.
    assert 'kimg' in panels['Metric: fid5k_full'].get_xlabel() and panels['Metric: fid5k_full'].get_ylabel() == 'fid5k_full'

def test_penalties_on_a_log_scale_only_when_positive_and_gaps_for_nan(tmp_path):
    rows = [{'Progress/kimg': {'mean': k}, 'Loss/r1_penalty': {'mean': r1}, 'Loss/pl_penalty': {'mean': 2.0}}
        for k, r1 in [(0, 0.01), (4, float('nan')), (8, 0.02)]]
    fig = curves.figure([('run', curves.read_run(_write_run(tmp_path / 'pos', rows)))])
    ax = _panels(fig)['Regularisation penalties']
    assert ax.get_yscale() == 'log' and 'log' in ax.get_ylabel()
    assert np.isnan(_line(ax, 'run', 'Loss/r1_penalty').get_ydata()[1])
    rows[0]['Loss/r1_penalty']['mean'] = 0.0
    fig = curves.figure([('run', curves.read_run(_write_run(tmp_path / 'zero', rows)))])
    assert _panels(fig)['Regularisation penalties'].get_yscale() == 'linear'

def test_a_run_without_statistics_yet_still_gets_a_picture(tmp_path):
    run = _write_run(tmp_path / 'empty', [])
    fig = curves.render([('empty', run)], os.path.join(run, 'curves.png'))
    assert _panels(fig) == {} and PIL.Image.open(os.path.join(run, 'curves.png')).format == 'PNG'
