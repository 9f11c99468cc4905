"""Cost of KD-DLGAN: sec/kimg with --kd=none and with --kd=agg,corr on the same config and device,
and their ratio, printed as ONE JSON line.

The teacher is CLIP ViT-B/32 (or --kd-clip). Its cost does not depend on its weights, so
--teacher=random measures the same thing where the pretrained weights cannot be had.

    python bench/kd_overhead.py --cfg=low_shot --res=256 --batch=8 --device=cuda
    python bench/kd_overhead.py --cfg=cifar --batch=8 --device=cpu --teacher=random --cbase=4096 --cmax=128
"""

import json
import os
import sys
import warnings

import click

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_speed import measure  # noqa: E402

@click.command()
@click.option('--cfg', default='cifar', show_default=True)
@click.option('--res', help='Resolution of the synthetic data', type=int, default=32, show_default=True)
@click.option('--batch', type=int, default=8, show_default=True)
@click.option('--device', type=click.Choice(['cpu', 'cuda']), default='cpu', show_default=True)
@click.option('--cbase', type=int)
@click.option('--cmax', type=int)
@click.option('--steps', help='Timed steps', type=int, default=2, show_default=True)
@click.option('--kd-clip', help='open_clip model of the teacher', default='ViT-B-32', show_default=True)
@click.option('--teacher', help='Teacher weights', type=click.Choice(['pretrained', 'random']), default='pretrained', show_default=True)
def main(cfg, res, batch, device, cbase, cmax, steps, kd_clip, teacher):
    common = dict(cfg=cfg, res=res, batch=batch, device=device, cbase=cbase, cmax=cmax, steps=steps)
    base = measure(**common)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # The random-teacher warning is expected here.
        with_kd = measure(**common, extra_args=['--kd=agg,corr', f'--kd-clip={kd_clip}', f'--kd-teacher={teacher}'])
    print(json.dumps(dict(bench='kd_overhead', cfg=cfg, res=res, batch=batch, device=device, cbase=cbase, cmax=cmax,
        kd_clip=kd_clip, teacher=teacher, sec_per_kimg_none=base['sec_per_kimg'], sec_per_kimg_kd=with_kd['sec_per_kimg'],
        ratio=round(with_kd['sec_per_kimg'] / base['sec_per_kimg'], 3))))

if __name__ == '__main__':
    main()
