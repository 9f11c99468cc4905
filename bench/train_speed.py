"""Training speed and peak memory of one configuration, printed as ONE JSON line.

Runs the real training loop (train.py) on a synthetic dataset: one warm-up step (all four phases,
including both lazy regularisations), then --steps timed steps; reports the timed tick's sec/kimg.

    python bench/train_speed.py --cfg=cifar --batch=8 --device=cpu --steps=2
    python bench/train_speed.py --cfg=paper256 --res=256 --batch=32 --device=cuda --impl=ref
    python bench/train_speed.py --cfg=biggan-cifar --batch=50 --device=cuda
"""

import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import warnings
import zipfile

import click
import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402
from torch_utils.ops import bias_act, upfirdn2d  # noqa: E402
from training import run_dir as run_names  # noqa: E402

PHASE_NAMES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')

def _write_dataset(path, num, res):
    rnd = np.random.RandomState(0)
    with zipfile.ZipFile(path, 'w') as z:
        for i in range(num):
            buf = io.BytesIO()
            PIL.Image.fromarray(rnd.randint(0, 256, size=[res, res, 3], dtype=np.uint8)).save(buf, format='PNG')
            z.writestr(f'00000/img{i:08d}.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps(dict(labels=None)))

def measure(cfg='cifar', res=32, batch=8, batch_gpu=None, device='cpu', impl='cuda', cbase=None, cmax=None, steps=2,
        extra_args=()):
    """Train one warm-up step plus `steps` timed steps; return the timed tick's figures as a dict."""
    if impl == 'ref':
        bias_act._init = upfirdn2d._init = lambda: False  # Plugins "unavailable": every op takes its reference path.
    step_nimg = batch * train.CONFIG_PRESETS[cfg].get('d_steps', 1)  # kimg counts reals shown to D.
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, 'bench.zip')
        _write_dataset(data, num=max(2 * batch, 16), res=res)
        args = ['--outdir', os.path.join(tmp, 'runs'), '--data', data, f'--cfg={cfg}', f'--batch={batch}', f'--device={device}',
            f'--kimg={step_nimg * (steps + 1) / 1000}', f'--tick={step_nimg * steps / 1000}', '--snap=1000', '--metrics=none',
            '--workers=0', '--aug=noaug']
        args += [f'--batch-gpu={batch_gpu}'] if batch_gpu is not None else []
        args += [f'--cbase={cbase}'] if cbase is not None else []
        args += [f'--cmax={cmax}'] if cmax is not None else []
        args += list(extra_args)
        with contextlib.redirect_stdout(io.StringIO()):
            train.main.main(args, standalone_mode=False)
        runs = os.path.join(tmp, 'runs')
        run_dir = os.path.join(runs, run_names.run_dirs(runs)[-1])
        ticks = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]
    timed = ticks[-1]
    result = dict(cfg=cfg, res=res, batch=batch, device=device, impl=impl, cbase=cbase, cmax=cmax,
        timed_steps=steps, sec_per_kimg=round(timed['Timing/sec_per_kimg']['mean'], 3),
        sec_per_step=round(timed['Timing/sec_per_kimg']['mean'] * step_nimg / 1000, 3))
    # Time of each phase in the last step of the tick (CUDA events on the GPU, the wall clock on the CPU).
    result['phase_ms'] = {key[len('Timing/'):]: round(value['mean'], 2) for key, value in timed.items()
        if key.startswith('Timing/') and key[len('Timing/'):] in PHASE_NAMES}
    if device == 'cuda':
        result['peak_gpu_mem_gb'] = round(timed['Resources/peak_gpu_mem_gb']['mean'], 3)
    result['peak_cpu_rss_gb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    return result

@click.command()
@click.option('--cfg', type=click.Choice(sorted(train.CONFIG_PRESETS)), default='cifar', show_default=True)
@click.option('--res', help='Resolution of the synthetic data', type=int, default=32, show_default=True)
@click.option('--batch', type=int, default=8, show_default=True)
@click.option('--batch-gpu', type=int)
@click.option('--device', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
@click.option('--impl', help='cuda: custom kernels where they build; ref: pure-PyTorch ops', type=click.Choice(['cuda', 'ref']), default='cuda', show_default=True)
@click.option('--cbase', type=int)
@click.option('--cmax', type=int)
@click.option('--steps', help='Timed steps', type=int, default=2, show_default=True)
@click.option('--kd', help='Distillation parts, e.g. agg,corr', default='none', show_default=True)
@click.option('--kd-teacher', help='auto: the pretrained ViT-B/32 when its weights are cached or in $KD_CLIP_WEIGHTS, else a random one of the same shape',
    type=click.Choice(['auto', 'pretrained', 'random']), default='auto', show_default=True)
def main(kd, kd_teacher, **kwargs):
    extra, teacher = [], None
    if kd != 'none':
        teacher = resolve_teacher(kd_teacher)
        extra = [f'--kd={kd}', f'--kd-teacher={teacher}'] + ([f'--kd-clip-weights={os.environ["KD_CLIP_WEIGHTS"]}']
            if teacher == 'pretrained' and os.environ.get('KD_CLIP_WEIGHTS') else [])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # The random-teacher warning is expected here.
        result = measure(**kwargs, extra_args=extra)
    print(json.dumps(dict(bench='train_speed', **result, kd=kd, kd_teacher=teacher)))

def resolve_teacher(kind):
    """'pretrained' or 'random' for --kd-teacher; auto looks for the weights without touching the network."""
    if kind != 'auto':
        return kind
    if os.environ.get('KD_CLIP_WEIGHTS') and os.path.isfile(os.environ['KD_CLIP_WEIGHTS']):
        return 'pretrained'
    import open_clip
    from kd import teacher
    tag_cfg = open_clip.get_pretrained_cfg('ViT-B-32', 'openai')
    return 'pretrained' if teacher.cached_weights(tag_cfg, teacher.default_cache_dir()) else 'random'

if __name__ == '__main__':
    main()
