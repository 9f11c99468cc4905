"""A picture of a run: the training curves of stats.jsonl and the metrics of metric-*.jsonl over kimg.

Written as RUN_DIR/curves.png at every snapshot; for any run directory, or several on one plot:

    python -m training.curves runs/00000-... runs/00001-... --out=compare.png

Panels: G and D losses, each KD term, the R1 and path-length penalties, LeCam, ADA's p, and every
metric. Drawn with PIL alone (no plotting library needed); one colour per run.
"""

import argparse
import glob
import json
import os

import numpy as np
import PIL.Image
import PIL.ImageDraw

import dnnlib
from training.run_dir import snapshot_kimg

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
FIXED = ['Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty', 'Loss/lecam_penalty', 'Progress/augment']
PANEL_W, PANEL_H, COLUMNS = 320, 200, 3

#----------------------------------------------------------------------------

def read_run(run_dir):
    """{series name: (kimg array, value array)} from stats.jsonl and metric-*.jsonl of a run directory."""
    series = dict()
    path = os.path.join(run_dir, 'stats.jsonl')
    if os.path.isfile(path):
        for line in open(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # A line being written.
            kimg = row.get('Progress/kimg', {}).get('mean')
            if kimg is None:
                continue
            for key, value in row.items():
                if isinstance(value, dict) and 'mean' in value and (key in FIXED or key.startswith('Loss/kd/')) and not key.endswith(('_raw', '_gate')):
                    series.setdefault(key, ([], []))
                    series[key][0].append(kimg)
                    series[key][1].append(value['mean'])
    for path in sorted(glob.glob(os.path.join(run_dir, 'metric-*.jsonl'))):
        for line in open(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            kimg = snapshot_kimg(str(row.get('snapshot_pkl')))  # Exact below 1 kimg too (network-snapshot-000000.008.pkl).
            for key, value in row.get('results', {}).items():
                if kimg is not None and isinstance(value, (int, float)) and np.isfinite(value):
                    series.setdefault('Metrics/' + key, ([], []))
                    series['Metrics/' + key][0].append(kimg)
                    series['Metrics/' + key][1].append(value)
    return {k: (np.asarray(x, np.float64), np.asarray(y, np.float64)) for k, (x, y) in series.items()}

def _panel(draw, box, title, curves):
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0 + 4, y0 + 2), title, fill=(0, 0, 0))
    points = [(x, y) for xs, ys, _ in curves for x, y in zip(xs, ys) if np.isfinite(y)]
    if not points:
        return
    xs, ys = np.array(points).T
    xmin, xmax = xs.min(), xs.max() if xs.max() > xs.min() else xs.min() + 1
    ymin, ymax = ys.min(), ys.max() if ys.max() > ys.min() else ys.min() + 1
    left, top, right, bottom = x0 + 48, y0 + 16, x1 - 6, y1 - 16
    draw.text((x0 + 2, top - 2), f'{ymax:.3g}', fill=(80, 80, 80))
    draw.text((x0 + 2, bottom - 10), f'{ymin:.3g}', fill=(80, 80, 80))
    draw.text((left, bottom + 2), f'{xmin:g}', fill=(80, 80, 80))
    draw.text((right - 64, bottom + 2), f'{xmax:g} kimg', fill=(80, 80, 80))
    for xs, ys, colour in curves:
        keep = np.isfinite(ys)
        px = left + (xs[keep] - xmin) / (xmax - xmin) * (right - left)
        py = bottom - (ys[keep] - ymin) / (ymax - ymin) * (bottom - top)
        pts = list(zip(px.tolist(), py.tolist()))
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for p in pts if len(pts) <= 1 else []:
            draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)

def render(runs, out_path):
    """runs: [(label, run_dir)]. Writes one PNG with a panel per series, one colour per run."""
    data = [(label, read_run(run_dir)) for label, run_dir in runs]
    names = sorted({name for _, series in data for name in series},
        key=lambda n: (FIXED.index(n) if n in FIXED else len(FIXED) + (n.startswith('Metrics/')), n))
    rows = max(1, -(-len(names) // COLUMNS))
    legend_h = 16 * len(runs) + 8
    image = PIL.Image.new('RGB', (COLUMNS * PANEL_W, rows * PANEL_H + legend_h), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(image)
    for i, (label, _) in enumerate(data):
        colour = COLOURS[i % len(COLOURS)]
        draw.rectangle([6, 6 + 16 * i, 18, 16 + 16 * i], fill=colour)
        draw.text((24, 5 + 16 * i), label, fill=(0, 0, 0))
    for idx, name in enumerate(names):
        r, c = divmod(idx, COLUMNS)
        box = (c * PANEL_W + 2, legend_h + r * PANEL_H + 2, (c + 1) * PANEL_W - 2, legend_h + (r + 1) * PANEL_H - 2)
        curves = [(series[name][0], series[name][1], COLOURS[i % len(COLOURS)]) for i, (_, series) in enumerate(data) if name in series]
        _panel(draw, box, name, curves)
    with dnnlib.util.atomic_write(out_path, 'wb') as f:  # Never half a picture.
        image.save(f, format='PNG')
    return names

def save_run_curves(run_dir):
    """RUN_DIR/curves.png of this run (called by the training loop at each snapshot)."""
    return render([(os.path.basename(os.path.normpath(run_dir)), run_dir)], os.path.join(run_dir, 'curves.png'))

#----------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description='Training curves of one or more run directories in one PNG.')
    parser.add_argument('run_dirs', nargs='+', metavar='RUN_DIR')
    parser.add_argument('--out', default='curves.png', help='output PNG [curves.png]')
    args = parser.parse_args(argv)
    missing = [d for d in args.run_dirs if not os.path.isfile(os.path.join(d, 'stats.jsonl'))]
    if missing:
        parser.error(f'{missing[0]} has no stats.jsonl: not a run directory')
    labels = [os.path.basename(os.path.normpath(d)) for d in args.run_dirs]
    if len(set(labels)) < len(labels):  # Same run names in different folders: label by the path given.
        labels = list(args.run_dirs)
    names = render(list(zip(labels, args.run_dirs)), args.out)
    print(f'Wrote {args.out} ({len(names)} panels, {len(args.run_dirs)} runs)')

if __name__ == '__main__':
    main()
