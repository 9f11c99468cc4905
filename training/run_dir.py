"""Names in an output folder, in one place: run directories (NNNNN-desc), the files a run writes at a
given training progress (network snapshots, image grids), and finding the newest of them by progress.

Snapshots keep StyleGAN2-ADA's name, network-snapshot-<kimg, 6 digits>.pkl, while that name is free in
the run; a second snapshot within the same kimg (runs shorter than 1 kimg, tiny --tick, a snapshot
written on a signal) gets the exact kimg with three decimals: network-snapshot-000000.008.pkl. The
whole-kimg name is a floor and the first in its kimg takes it, so ordering by the number in the name
is ordering by progress; the name's text order is not (1000000 < 999999 as text).
"""

import os
import re
import tempfile

SNAPSHOT_PREFIX = 'network-snapshot-'
BEST_SNAPSHOT = 'network-snapshot-best.pkl'
_PROGRESS = r'(\d+)(?:\.(\d{3}))?'
_SNAPSHOT_RE = re.compile(re.escape(SNAPSHOT_PREFIX) + _PROGRESS + r'\.pkl')
_RUN_DIR_RE = re.compile(r'(\d+)-.*')

#----------------------------------------------------------------------------
# Run directories.

def run_dirs(outdir):
    """Names of the run directories in outdir (NNNNN-...), in run-number order; [] when outdir is absent."""
    if not os.path.isdir(outdir):
        return []
    dirs = [d for d in os.listdir(outdir) if _RUN_DIR_RE.fullmatch(d) and os.path.isdir(os.path.join(outdir, d))]
    return sorted(dirs, key=lambda d: int(_RUN_DIR_RE.fullmatch(d).group(1)))

def check_outdir(outdir):
    """Raise ValueError unless outdir is a folder that can be written, or can be created as one. Nothing is
    left behind: the probe is an empty folder made and removed in the nearest folder that exists."""
    path = os.path.abspath(outdir)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f'{outdir} cannot be created: {existing} is a file, not a folder')
    try:
        os.rmdir(tempfile.mkdtemp(prefix='.write-probe-', dir=existing))
    except OSError as err:
        where = 'is' if existing == path else f'cannot be created in {existing}, which is'
        raise ValueError(f'{outdir} {where} not writable ({err.strerror})') from None

def next_run_dir(outdir, desc):
    """Path of the next run directory: one more than the highest run number in outdir."""
    numbers = [int(_RUN_DIR_RE.fullmatch(d).group(1)) for d in run_dirs(outdir)]
    return os.path.join(outdir, f'{max(numbers, default=-1) + 1:05d}-{desc}')

#----------------------------------------------------------------------------
# Files named by training progress.

def progress_name(prefix, suffix, nimg, taken):
    """prefix + kimg + suffix: the whole kimg (StyleGAN2-ADA's name) unless a file of this run already has
    it, then the exact kimg with three decimals. `taken` holds the names this run has used."""
    whole = f'{prefix}{nimg // 1000:06d}{suffix}'
    if whole not in taken:
        return whole
    return f'{prefix}{nimg // 1000:06d}.{nimg % 1000:03d}{suffix}'

def snapshot_name(nimg, taken):
    return progress_name(SNAPSHOT_PREFIX, '.pkl', nimg, taken)

def snapshot_kimg(path):
    """Training progress in kimg that a snapshot's file name gives, or None for other names."""
    match = _SNAPSHOT_RE.fullmatch(os.path.basename(path))
    if match is None:
        return None
    whole, frac = match.groups()
    return int(whole) + (int(frac) / 1000 if frac is not None else 0.0)

def list_snapshots(run_dir):
    """Paths of the run's network snapshots (not the best-snapshot copy), oldest first by training progress."""
    if not os.path.isdir(run_dir):
        return []
    names = [f for f in os.listdir(run_dir) if snapshot_kimg(f) is not None]
    return [os.path.join(run_dir, f) for f in sorted(names, key=lambda f: (snapshot_kimg(f), f))]

def latest_snapshot(run_dir):
    """The run's snapshot with the most training progress, or None."""
    snapshots = list_snapshots(run_dir)
    return snapshots[-1] if snapshots else None

#----------------------------------------------------------------------------
