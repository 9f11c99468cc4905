"""What a run shows while it trains: the tick line, image grids (reals.png, fakes_init.png, fakesNNNNNN.png),
the statistics of each tick in stats.jsonl and TensorBoard, and curves.png at every snapshot.

TensorBoard (rank 0, events in the run directory, x = global_step = whole kimg): every statistic of the tick
under its training_stats name (Loss/..., Loss/kd/..., Progress/augment, Timing/..., Resources/...), each
metric as Metrics/<name> at the tick of the snapshot it scored, and the fakes grid as Images/fakes at each
image snapshot. Writing them draws no random numbers and touches no tensor of the run."""

import json
import os
import shlex
import time

import numpy as np
import PIL.Image
import psutil
import torch

import dnnlib
from torch_utils import accel
from torch_utils import training_stats
from training import image_grid
from training import run_dir as run_names
from training.curves import save_run_curves

#----------------------------------------------------------------------------

def tick_line(cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time, tick_timing_nimg, total_kimg, maintenance_time,
        device, augment_pipe):
    """Report the tick's progress, timing and resources to training_stats; return the line to print."""
    fields = []
    fields += [f"tick {training_stats.report0('Progress/tick', cur_tick):<5d}"]
    fields += [f"kimg {training_stats.report0('Progress/kimg', cur_nimg / 1e3):<8.3f}"]
    fields += [f"time {dnnlib.util.format_time(training_stats.report0('Timing/total_sec', tick_end_time - start_time)):<12s}"]
    fields += [f"sec/tick {training_stats.report0('Timing/sec_per_tick', tick_end_time - tick_start_time):<7.1f}"]
    sec_per_kimg = (tick_end_time - tick_start_time) / max(cur_nimg - tick_timing_nimg, 1) * 1e3
    fields += [f"sec/kimg {training_stats.report0('Timing/sec_per_kimg', sec_per_kimg):<7.2f}"]
    fields += [f"ETA {dnnlib.util.format_time(max(total_kimg - cur_nimg / 1e3, 0) * sec_per_kimg):<12s}"]
    fields += [f"maintenance {training_stats.report0('Timing/maintenance_sec', maintenance_time):<6.1f}"]
    fields += [f"cpumem {training_stats.report0('Resources/cpu_mem_gb', psutil.Process(os.getpid()).memory_info().rss / 2**30):<6.2f}"]
    peak_gpu_mem = accel.peak_memory_gb(device)
    if peak_gpu_mem is not None:
        fields += [f"gpumem {training_stats.report0('Resources/peak_gpu_mem_gb', peak_gpu_mem):<6.2f}"]
    fields += [f"augment {training_stats.report0('Progress/augment', float(augment_pipe.p) if augment_pipe is not None else 0):.3f}"]
    training_stats.report0('Timing/total_hours', (tick_end_time - start_time) / (60 * 60))
    training_stats.report0('Timing/total_days', (tick_end_time - start_time) / (24 * 60 * 60))
    return ' '.join(fields)

#----------------------------------------------------------------------------
# TensorBoard.

FAKES_TAG = 'Images/fakes'

def open_tensorboard(run_dir, log):
    """A SummaryWriter of events in run_dir, and a log line that says how to view them; without TensorBoard
    one warning line and None (the run goes on with stats.jsonl and curves.png)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # Optional, and slow to import: only where events are written.
    except ImportError as err:
        log(f'Warning: TensorBoard is not available ({err}); this run writes no TensorBoard events (stats.jsonl '
            f'and curves.png as usual). Install it with: pip install tensorboard')
        return None
    writer = SummaryWriter(run_dir)
    run_path = os.path.abspath(run_dir)
    log(f'TensorBoard: events in {run_path}; view with: tensorboard --logdir {shlex.quote(os.path.dirname(run_path))} '
        f'(this run beside the others of its folder), then open http://localhost:6006')
    return writer

def kimg_step(cur_nimg):
    """TensorBoard's global_step: the whole kimg, as StyleGAN2-ADA."""
    return int(cur_nimg / 1e3)

def add_png(writer, tag, png_path, global_step, walltime):
    """An image file as written (uint8, height x width [x channels]), so TensorBoard shows exactly that grid."""
    with PIL.Image.open(png_path) as image:
        pixels = np.asarray(image)
    dataformats = 'HW' if pixels.ndim == 2 else 'HWC'  # A one-channel grid is a greyscale PNG.
    writer.add_image(tag, pixels, global_step=global_step, walltime=walltime, dataformats=dataformats)

#----------------------------------------------------------------------------

class Reporter:
    """Rank 0 writes; every rank collects the statistics (a collective). Creating it writes reals.png and
    fakes_init.png (when image grids are on) and opens the logs; close() closes them.
    Ticks: begin_tick() when one starts, end_tick() prints its line, write_stats() ends its statistics."""

    def __init__(self, run_dir, training_set, G_ema, random_seed, batch_gpu, image_snapshot_ticks, total_kimg, start_time,
            rank, device, log):
        self.run_dir = run_dir
        self.G_ema = G_ema
        self.total_kimg = total_kimg
        self.start_time = start_time
        self.rank = rank
        self.device = device
        self.log = log
        self.grid_size = self.grid_z = self.grid_c = None
        self.grid_names = set()
        if rank == 0 and image_snapshot_ticks is not None:
            self._export_reals_and_init(training_set, random_seed=random_seed, batch_gpu=batch_gpu)
        self._open_logs()
        self.tick_start_time = self.tick_end_time = None
        self.tick_timing_nimg = 0
        self.maintenance_time = 0.0

    def _export_reals_and_init(self, training_set, random_seed, batch_gpu):
        """reals.png, and fakes_init.png from fixed latents (their own generator) and the reals' labels."""
        self.log('Exporting sample images...')
        self.grid_size, images, labels = image_grid.setup_snapshot_image_grid(training_set, random_seed,
            max_size=image_grid.grid_max_size(self.device))
        image_grid.save_image_grid(images, os.path.join(self.run_dir, 'reals.png'), drange=[0, 255], grid_size=self.grid_size)
        grid_rnd = torch.Generator(device='cpu').manual_seed(random_seed)
        self.grid_z = torch.randn([labels.shape[0], self.G_ema.z_dim], generator=grid_rnd).to(self.device).split(batch_gpu)
        self.grid_c = torch.from_numpy(labels).to(self.device).split(batch_gpu)
        image_grid.save_image_grid(image_grid.generate_grid(self.G_ema, self.grid_z, self.grid_c),
            os.path.join(self.run_dir, 'fakes_init.png'), drange=[-1, 1], grid_size=self.grid_size)

    def _open_logs(self):
        self.log('Initializing logs...')
        self.stats_collector = training_stats.Collector(regex='.*')
        self.stats_jsonl = None
        self.stats_tfevents = None
        if self.rank == 0:
            self.stats_jsonl = open(os.path.join(self.run_dir, 'stats.jsonl'), 'at')
            self.stats_tfevents = open_tensorboard(self.run_dir, log=self.log)

    def begin_tick(self, cur_nimg):
        """A tick starts at cur_nimg (mid-way after a resume from a stop); the time since the last tick's end
        (or since the start) is maintenance."""
        self.tick_start_time = time.time()
        self.maintenance_time = self.tick_start_time - (self.tick_end_time if self.tick_end_time is not None else self.start_time)
        self.tick_timing_nimg = cur_nimg

    def end_tick(self, cur_tick, cur_nimg, augment_pipe):
        """Report the tick's progress, timing and resources, and print its line."""
        self.tick_end_time = time.time()
        self.log(tick_line(cur_tick, cur_nimg, self.start_time, self.tick_start_time, self.tick_end_time, self.tick_timing_nimg,
            self.total_kimg, self.maintenance_time, self.device, augment_pipe))

    def save_grid(self, cur_nimg):
        """fakesNNNNNN.png: G_ema on the fixed latents and labels (rank 0, when image grids are on), and the same
        picture in TensorBoard at this kimg."""
        if self.grid_size is None:
            return
        grid_name = run_names.progress_name('fakes', '.png', cur_nimg, taken=self.grid_names)
        self.grid_names.add(grid_name)
        grid_path = os.path.join(self.run_dir, grid_name)
        image_grid.save_image_grid(image_grid.generate_grid(self.G_ema, self.grid_z, self.grid_c), grid_path,
            drange=[-1, 1], grid_size=self.grid_size)
        if self.stats_tfevents is not None:
            add_png(self.stats_tfevents, FAKES_TAG, grid_path, global_step=kimg_step(cur_nimg),
                walltime=time.time() - self.start_time)

    def write_stats(self, cur_nimg, metric_results, snapshot_written):
        """Collect the tick's statistics (a collective), append them to stats.jsonl and TensorBoard; after a
        snapshot, redraw curves.png and put its metrics (the newest of each, i.e. this snapshot's) in TensorBoard
        at this tick's kimg."""
        self.stats_collector.update()
        stats_dict = self.stats_collector.as_dict()
        timestamp = time.time()
        if self.stats_jsonl is not None:
            self.stats_jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
            self.stats_jsonl.flush()
            if snapshot_written:
                save_run_curves(self.run_dir)  # RUN_DIR/curves.png: the run so far, at every snapshot.
        if self.stats_tfevents is not None:
            self._add_scalars(stats_dict, metric_results if snapshot_written else {}, global_step=kimg_step(cur_nimg),
                walltime=timestamp - self.start_time)

    def _add_scalars(self, stats_dict, metric_results, global_step, walltime):
        """One tick in TensorBoard: every statistic's mean, and the metrics of a snapshot written in this tick
        (ticks without a snapshot add none, so a metric's points are at the kimg of the snapshots it scored)."""
        for name, value in stats_dict.items():
            self.stats_tfevents.add_scalar(name, value.mean, global_step=global_step, walltime=walltime)
        for name, value in metric_results.items():
            self.stats_tfevents.add_scalar(f'Metrics/{name}', value, global_step=global_step, walltime=walltime)
        self.stats_tfevents.flush()

    def close(self):
        if self.stats_jsonl is not None:
            self.stats_jsonl.close()
        if self.stats_tfevents is not None:
            self.stats_tfevents.close()

#----------------------------------------------------------------------------
