"""What a run shows while it trains: the tick line, image grids (reals.png, fakes_init.png, fakesNNNNNN.png),
the statistics of each tick in stats.jsonl and TensorBoard, and curves.png at every snapshot."""

import json
import os
import time

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
            try:
                import torch.utils.tensorboard as tensorboard
                self.stats_tfevents = tensorboard.SummaryWriter(self.run_dir)
            except ImportError:
                pass  # TensorBoard is optional.

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
        """fakesNNNNNN.png: G_ema on the fixed latents and labels (rank 0, when image grids are on)."""
        if self.grid_size is None:
            return
        grid_name = run_names.progress_name('fakes', '.png', cur_nimg, taken=self.grid_names)
        self.grid_names.add(grid_name)
        image_grid.save_image_grid(image_grid.generate_grid(self.G_ema, self.grid_z, self.grid_c),
            os.path.join(self.run_dir, grid_name), drange=[-1, 1], grid_size=self.grid_size)

    def write_stats(self, cur_nimg, metric_results, snapshot_written):
        """Collect the tick's statistics (a collective), append them to stats.jsonl and TensorBoard with the
        metrics so far; after a snapshot, redraw curves.png."""
        self.stats_collector.update()
        stats_dict = self.stats_collector.as_dict()
        timestamp = time.time()
        if self.stats_jsonl is not None:
            self.stats_jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
            self.stats_jsonl.flush()
            if snapshot_written:
                save_run_curves(self.run_dir)  # RUN_DIR/curves.png: the run so far, at every snapshot.
        if self.stats_tfevents is not None:
            global_step = int(cur_nimg / 1e3)
            walltime = timestamp - self.start_time
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
