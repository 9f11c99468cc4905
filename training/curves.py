"""A picture of a run: the training curves of stats.jsonl and the metrics of metric-*.jsonl over kimg.

Written as RUN_DIR/curves.png at every snapshot; for any run directory, or several on one plot:

    python -m training.curves runs/00000-... runs/00001-... --out=compare.png

Panels (those with data): G and D losses; the R1, path-length and LeCam penalties; the KD terms; ADA's p;
one per metric. Drawn with matplotlib's Agg canvas (no display, no pyplot state): x in kimg, one colour per
run (the legend on top names the runs), one line style per statistic within a panel.
"""

import argparse
import glob
import json
import os

import numpy as np

import dnnlib
from training.run_dir import snapshot_kimg

FIXED = ['Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty', 'Loss/lecam_penalty', 'Progress/augment']
KD_PREFIX = 'Loss/kd/'
METRIC_PREFIX = 'Metrics/'
PANELS = [  # (title, y label, the series it shows: names, or a prefix). Metrics get a panel each.
    ('G and D losses', 'loss', ['Loss/G/loss', 'Loss/D/loss']),
    ('Regularisation penalties', 'penalty', ['Loss/r1_penalty', 'Loss/pl_penalty', 'Loss/lecam_penalty']),
    ('Knowledge distillation', 'KD term', KD_PREFIX),
    ('Augmentation', 'ADA p', ['Progress/augment']),
]
LOG_PANELS = ['Regularisation penalties']  # Log y when every value is positive: R1 and path length differ by decades.
X_LABEL = 'kimg (thousands of real images shown to D)'
LINE_STYLES = ['-', '--', ':', '-.']
PANEL_INCHES, DPI, COLUMNS = (4.2, 3.0), 100, 3
# Fixed margins in inches (title, labels, ticks; the run legend on top): half the time of matplotlib's
# layout engines, which measure every text at every save.
MARGINS = dict(left=0.75, right=0.2, bottom=0.5, top=0.6, wspace=0.8, hspace=0.8)
MARKER_POINTS = 20  # Series this short get a marker on every point (a single point is visible too).

#----------------------------------------------------------------------------
# Reading a run.

def _json_lines(path):
    """The rows of a .jsonl file; a line being written (torn, not JSON yet) is skipped."""
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows

def read_run(run_dir):
    """{series name: (kimg array, value array)} from stats.jsonl and metric-*.jsonl of a run directory."""
    series = dict()
    path = os.path.join(run_dir, 'stats.jsonl')
    for row in _json_lines(path) if os.path.isfile(path) else []:
        kimg = row.get('Progress/kimg', {}).get('mean')
        if kimg is None:
            continue
        for key, value in row.items():
            plotted = (key in FIXED or key.startswith(KD_PREFIX)) and not key.endswith(('_raw', '_gate'))
            if plotted and isinstance(value, dict) and 'mean' in value:
                series.setdefault(key, ([], []))
                series[key][0].append(kimg)
                series[key][1].append(value['mean'])
    for path in sorted(glob.glob(os.path.join(run_dir, 'metric-*.jsonl'))):
        for row in _json_lines(path):
            kimg = snapshot_kimg(str(row.get('snapshot_pkl')))  # Exact below 1 kimg too (network-snapshot-000000.008.pkl).
            for key, value in row.get('results', {}).items():
                if kimg is not None and isinstance(value, (int, float)) and np.isfinite(value):
                    series.setdefault(METRIC_PREFIX + key, ([], []))
                    series[METRIC_PREFIX + key][0].append(kimg)
                    series[METRIC_PREFIX + key][1].append(value)
    return {k: (np.asarray(x, np.float64), np.asarray(y, np.float64)) for k, (x, y) in series.items()}

#----------------------------------------------------------------------------
# Drawing.

def panels(names):
    """[(title, y label, [series names])]: the panels that have data, in PANELS order, then one per metric."""
    found = []
    for title, y_label, members in PANELS:
        if isinstance(members, str):
            shown = sorted(n for n in names if n.startswith(members))
        else:
            shown = [n for n in members if n in names]
        if shown:
            found.append((title, y_label, shown))
    for name in sorted(n for n in names if n.startswith(METRIC_PREFIX)):
        metric = name[len(METRIC_PREFIX):]
        found.append((f'Metric: {metric}', metric, [name]))
    return found

def _draw_panel(ax, title, y_label, names, data):
    """One panel: every run (a colour each) times every series (a line style each); a series legend when the
    panel has more than one. matplotlib leaves a gap at NaN and inf (a diverged tick)."""
    from matplotlib.lines import Line2D  # matplotlib: only when a picture is drawn (see figure()).
    for run_idx, (run_label, series) in enumerate(data):
        for style, name in zip(LINE_STYLES * len(names), names):
            if name in series:
                xs, ys = series[name]
                ax.plot(xs, ys, color=f'C{run_idx % 10}', linestyle=style, linewidth=1.2,
                    marker=('o' if len(xs) <= MARKER_POINTS else None), markersize=3, label=f'{run_label} | {name}')
    values = np.concatenate([series[name][1] for _, series in data for name in names if name in series])
    log_y = title in LOG_PANELS and np.all(values[np.isfinite(values)] > 0)
    if log_y:
        ax.set_yscale('log')
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(X_LABEL, fontsize=8)
    ax.set_ylabel(y_label + (' (log scale)' if log_y else ''), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    if len(names) > 1:
        handles = [Line2D([], [], color='0.3', linestyle=style) for style, _ in zip(LINE_STYLES * len(names), names)]
        ax.legend(handles, names, fontsize=7, loc='best')

def figure(data):
    """A matplotlib Figure of data = [(run label, read_run(...) of that run)]: the panels of every series any
    run has, and a legend of the runs on top."""
    # matplotlib is imported here, not at module level: it is heavy and the training loop imports this module.
    # The Figure is drawn on its own Agg canvas: no display, no pyplot registry to close it in.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    layout = panels({name for _, series in data for name in series})
    columns = max(1, min(COLUMNS, len(layout)))
    rows = max(1, -(-len(layout) // columns))
    width, height = PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows + 0.4
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw=_grid(width, height, rows=rows, columns=columns)).flatten()
    for ax, (title, y_label, names) in zip(axes, layout):
        _draw_panel(ax, title, y_label, names, data)
    for ax in axes[len(layout):]:
        ax.set_axis_off()  # The empty cells of the last row (or the only one of a run without data yet).
    if not layout:
        axes[0].text(0.5, 0.5, 'no statistics yet', ha='center', va='center')
    handles = [Line2D([], [], color=f'C{run_idx % 10}', linewidth=2) for run_idx in range(len(data))]
    fig.legend(handles, [run_label for run_label, _ in data], loc='upper center', ncols=min(len(data), 3), fontsize=8)
    return fig

def _grid(width, height, rows, columns):
    """subplots' grid spacing (fractions of the figure and of a panel) for MARGINS in inches."""
    m = MARGINS
    axes_w = (width - m['left'] - m['right'] - (columns - 1) * m['wspace']) / columns
    axes_h = (height - m['top'] - m['bottom'] - (rows - 1) * m['hspace']) / rows
    return dict(left=m['left'] / width, right=1 - m['right'] / width, bottom=m['bottom'] / height, top=1 - m['top'] / height,
        wspace=m['wspace'] / axes_w, hspace=m['hspace'] / axes_h)

def render(runs, out_path):
    """runs: [(label, run_dir)]. Writes one PNG (atomically: never half a picture) and returns its Figure."""
    fig = figure([(label, read_run(run_dir)) for label, run_dir in runs])
    with dnnlib.util.atomic_write(out_path, 'wb') as f:
        fig.savefig(f, format='png')
    return fig

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
    fig = render(list(zip(labels, args.run_dirs)), args.out)
    num_panels = sum(ax.axison for ax in fig.axes)
    print(f'Wrote {args.out} ({num_panels} panels, {len(args.run_dirs)} runs)')

if __name__ == '__main__':
    main()
