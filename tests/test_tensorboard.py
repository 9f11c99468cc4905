"""TensorBoard events of a run, read back with TensorBoard's own EventAccumulator: every statistic of every
tick at global_step = whole kimg, each metric at the tick of the snapshot it scored, the fakes grid as in
fakesNNNNNN.png; the log line that says where the events are; one warning line, and a run that goes on,
when TensorBoard cannot be imported."""

import glob
import io
import json
import os
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import dnnlib
from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training.reporter import FAKES_TAG, Reporter

METRIC = 'fid_tb'

def _events(run_dir):
    files = glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))
    assert len(files) == 1, files  # One writer per run.
    acc = EventAccumulator(run_dir, size_guidance={'scalars': 0, 'images': 0})  # 0: keep every event.
    acc.Reload()
    return acc

def _steps(events):
    return [event.step for event in events]

def _png_pixels(data):
    return np.asarray(PIL.Image.open(io.BytesIO(data) if isinstance(data, bytes) else data))

#----------------------------------------------------------------------------
# A tiny run through train.py: 3 ticks (4, 12 and 16 images), snapshots, image grids and a stand-in metric
# (1.0, 2.0, ... per call) at ticks 0 and 2 only (--snap=2), so a metric written at every tick shows.

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    from metrics import metric_main
    tmp = tmp_path_factory.mktemp('tensorboard')
    data = make_dataset_zip(tmp / 'tiny.zip', num=8)
    calls = []
    def fid_tb(opts):
        calls.append(opts.G)
        return {METRIC: float(len(calls))}
    fid_tb.__name__ = METRIC
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
        metric_main.register_metric(fid_tb, detectors=())
        args = [a for a in TINY_ARGS if not a.startswith(('--metrics', '--snap'))]
        outdir = str(tmp / 'runs')
        result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.016', '--snap=2', f'--metrics={METRIC}'] + args)
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)
    ticks = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]
    assert [t['Progress/kimg']['mean'] for t in ticks] == pytest.approx([0.004, 0.012, 0.016])
    return dnnlib.EasyDict(run_dir=run_dir, outdir=outdir, output=result.output, ticks=ticks, acc=_events(run_dir))

def test_every_statistic_of_every_tick_is_a_scalar_at_its_kimg(tiny_run):
    tags = set(tiny_run.acc.Tags()['scalars'])
    names = {name for tick in tiny_run.ticks for name in tick if name != 'timestamp'}
    assert names <= tags, names - tags
    for name in ['Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Progress/augment', 'Timing/sec_per_kimg', 'Timing/Gmain',
            'Resources/cpu_mem_gb']:
        assert name in tags, name
    steps = [int(t['Progress/kimg']['mean']) for t in tiny_run.ticks]
    for name in ['Loss/G/loss', 'Progress/augment', 'Progress/kimg', 'Timing/sec_per_kimg']:
        events = tiny_run.acc.Scalars(name)
        assert _steps(events) == steps, name
        np.testing.assert_allclose([e.value for e in events], [t[name]['mean'] for t in tiny_run.ticks], rtol=1e-6)

def test_a_metric_lands_at_the_tick_of_its_snapshot(tiny_run):
    events = tiny_run.acc.Scalars(f'Metrics/{METRIC}')
    assert [e.value for e in events] == [1.0, 2.0]  # Once per snapshot: none at tick 1, which had no snapshot.
    # Every scalar of one tick carries the same wall time, so it tells which tick a point belongs to.
    kimg_events = tiny_run.acc.Scalars('Progress/kimg')
    assert [e.wall_time for e in events] == [kimg_events[0].wall_time, kimg_events[2].wall_time]
    assert _steps(events) == [kimg_events[0].step, kimg_events[2].step]
    rows = [json.loads(line) for line in open(os.path.join(tiny_run.run_dir, f'metric-{METRIC}.jsonl'))]
    assert [row['results'][METRIC] for row in rows] == [1.0, 2.0]

def test_the_fakes_grid_is_the_png_of_each_image_snapshot(tiny_run):
    assert FAKES_TAG in tiny_run.acc.Tags()['images']
    images = tiny_run.acc.Images(FAKES_TAG)
    pngs = [os.path.join(tiny_run.run_dir, name) for name in ['fakes000000.png', 'fakes000000.016.png']]
    assert len(images) == len(pngs) == len(glob.glob(os.path.join(tiny_run.run_dir, 'fakes0*.png')))
    kimg_events = tiny_run.acc.Scalars('Progress/kimg')
    assert _steps(images) == [kimg_events[0].step, kimg_events[2].step]
    for image, png in zip(images, pngs):
        pixels = _png_pixels(png)
        assert (image.width, image.height) == PIL.Image.open(png).size == (8 * 16, 8 * 16)
        np.testing.assert_array_equal(_png_pixels(image.encoded_image_string), pixels)  # uint8 HWC as written, not rescaled.

def test_the_log_says_where_the_events_are_once(tiny_run):
    for text in [tiny_run.output, open(os.path.join(tiny_run.run_dir, 'log.txt')).read()]:
        lines = [line for line in text.splitlines() if 'TensorBoard' in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f'TensorBoard: events in {os.path.abspath(tiny_run.run_dir)};')
        assert f'tensorboard --logdir {os.path.abspath(tiny_run.outdir)} ' in lines[0]

#----------------------------------------------------------------------------
# The Reporter driven by hand, past whole kimg: global_step is the whole kimg of the tick.

class _ShadeG(torch.nn.Module):
    """A stand-in G_ema: each image one grey level from its latent, in `channels` channels."""
    z_dim = 2

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, z, c, noise_mode):
        return torch.tanh(z[:, :1, None, None]).expand(-1, self.channels, 16, 16)

@pytest.mark.parametrize('channels', [3, 1])
def test_steps_are_whole_kimg_and_metrics_come_with_their_snapshot(tmp_path, channels):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    training_set = dnnlib.util.construct_class_by_name(class_name='training.dataset.ImageFolderDataset', path=data)
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    lines = []
    reporter = Reporter(str(run_dir), training_set=training_set, G_ema=_ShadeG(channels), random_seed=0, batch_gpu=4,
        image_snapshot_ticks=1, total_kimg=5, start_time=time.time(), rank=0, device=torch.device('cpu'), log=lines.append)
    for tick, (nimg, snapshot) in enumerate([(0, True), (1500, False), (2500, True), (4999, False)]):
        reporter.begin_tick(cur_nimg=nimg)
        reporter.end_tick(cur_tick=tick, cur_nimg=nimg, augment_pipe=None)
        if snapshot:
            reporter.save_grid(cur_nimg=nimg)
        reporter.write_stats(cur_nimg=nimg, metric_results={METRIC: 10.0 + tick}, snapshot_written=snapshot)
    reporter.close()
    acc = _events(str(run_dir))
    assert _steps(acc.Scalars('Progress/tick')) == [0, 1, 2, 4]
    assert [e.value for e in acc.Scalars('Progress/tick')] == [0, 1, 2, 3]
    metric = acc.Scalars(f'Metrics/{METRIC}')
    assert _steps(metric) == [0, 2] and [e.value for e in metric] == [10.0, 12.0]
    images = acc.Images(FAKES_TAG)
    assert _steps(images) == [0, 2]
    for image, name in zip(images, ['fakes000000.png', 'fakes000002.png']):
        png = _png_pixels(str(run_dir / name))
        shown = _png_pixels(image.encoded_image_string)
        assert png.ndim == (2 if channels == 1 else 3) and shown.shape == (128, 128, 3)  # A grey grid shows as grey RGB.
        np.testing.assert_array_equal(shown, png[:, :, None].repeat(3, axis=2) if channels == 1 else png)
    assert sum('TensorBoard: events in' in line for line in lines) == 1

#----------------------------------------------------------------------------
# Without TensorBoard.

def test_without_tensorboard_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    # As if the package were not installed: importing it fails inside torch.utils.tensorboard.
    monkeypatch.setitem(sys.modules, 'tensorboard', None)
    monkeypatch.delitem(sys.modules, 'torch.utils.tensorboard', raising=False)
    with pytest.raises(ImportError):
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--kimg=0.012'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(str(tmp_path / 'runs'))
    for text in [result.output, open(os.path.join(run_dir, 'log.txt')).read()]:
        lines = [line for line in text.splitlines() if 'TensorBoard' in line]
        assert len(lines) == 1 and lines[0].startswith('Warning: TensorBoard is not available'), lines
        assert 'pip install tensorboard' in lines[0] and 'Traceback' not in text and 'Exiting...' in text
    assert glob.glob(os.path.join(run_dir, 'events.out.tfevents.*')) == []
    assert len(open(os.path.join(run_dir, 'stats.jsonl')).readlines()) == 2
    assert os.path.isfile(os.path.join(run_dir, 'curves.png')) and os.path.isfile(os.path.join(run_dir, 'fakes000000.012.png'))
