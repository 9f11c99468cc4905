"""Where a run resumes from: --resume names (latest, a run directory, a pickle or weights file, a URL,
the ADA paper's transfer sources), the check that the network fits the data before any run directory
exists, and whether it continues one of our runs exactly or starts transfer learning."""

import os
import re

import click

import dnnlib

def _latest_snapshot(run_dir):
    pkls = sorted(f for f in os.listdir(run_dir) if re.fullmatch(r'network-snapshot-\d+\.pkl', f))
    if len(pkls) == 0:
        return None
    return os.path.join(run_dir, max(pkls, key=lambda f: (f, os.path.getmtime(os.path.join(run_dir, f)))))

def _run_dirs(outdir):
    if not os.path.isdir(outdir):
        return []
    dirs = [d for d in os.listdir(outdir) if re.match(r'^\d+-', d) and os.path.isdir(os.path.join(outdir, d))]
    return sorted(dirs, key=lambda d: int(re.match(r'^\d+', d).group()))

def check_resume_network(pkl, resolution, channels, label_dim, backbone):
    """Load the --resume pickle now, before any run directory exists: one clear error for a corrupt file,
    a pickle that holds no networks, or networks that do not fit the data (naming both)."""
    from training.snapshot import load_network_pkl
    try:
        data = load_network_pkl(pkl)
    except (OSError, ValueError) as err:
        raise click.UsageError(f'--resume: {err}')
    G = data['G_ema']
    have = (int(G.img_resolution), int(G.img_channels), int(G.c_dim))
    want = (resolution, channels, label_dim)
    if have != want:
        describe = lambda r, ch, c: f'{r}x{r}, {ch} channel{"s" if ch != 1 else ""}, {c} labels'
        raise click.UsageError(f'--resume: the network in {pkl} is {describe(*have)}, but --data is {describe(*want)}'
            f'{" (with --cond=1)" if label_dim else ""}; resume from a network trained on data of this shape, '
            f'or change --data/--cond')
    is_biggan = not (hasattr(G, 'mapping') and hasattr(G, 'synthesis'))  # StyleGAN2's G has both, BigGAN's neither.
    if is_biggan != (backbone == 'biggan'):
        raise click.UsageError(f'--resume: the network in {pkl} is a {"BigGAN" if is_biggan else "StyleGAN2"} generator, '
            f'but --cfg selects {"BigGAN" if backbone == "biggan" else "StyleGAN2"}; pick the matching --cfg')

# Transfer-learning sources of the ADA paper, by the names StyleGAN2-ADA's train.py gives them (resume_specs).
_TRANSFER = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/'
RESUME_SPECS = {
    'ffhq256':     _TRANSFER + 'ffhq-res256-mirror-paper256-noaug.pkl',
    'ffhq512':     _TRANSFER + 'ffhq-res512-mirror-stylegan2-noaug.pkl',
    'ffhq1024':    _TRANSFER + 'ffhq-res1024-mirror-stylegan2-noaug.pkl',
    'celebahq256': _TRANSFER + 'celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl',
    'lsundog256':  _TRANSFER + 'lsundog-res256-paper256-kimg100000-noaug.pkl',
}

def _continues_a_run(pkl):
    """A snapshot inside a run directory of this project (beside its training_options.json)."""
    return os.path.isfile(pkl) and os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(pkl)), 'training_options.json'))

def resolve_resume(resume, outdir):
    """'latest' -> newest snapshot of the newest run in outdir; RUN_DIR -> its newest snapshot; else a pickle path/URL."""
    if resume in RESUME_SPECS:
        return RESUME_SPECS[resume]  # Fetched through open_url's cache by check_resume_network.
    if resume == 'latest':
        for d in reversed(_run_dirs(outdir)):
            pkl = _latest_snapshot(os.path.join(outdir, d))
            if pkl is not None:
                return pkl
        raise click.UsageError(f'--resume=latest: no run directory with a network snapshot in {outdir}')
    if os.path.isdir(resume):
        pkl = _latest_snapshot(resume)
        if pkl is None:
            raise click.UsageError(f'--resume: {resume} holds no network-snapshot-*.pkl')
        return pkl
    if not dnnlib.util.is_url(resume, allow_file_urls=True) and not os.path.isfile(resume):
        raise click.UsageError(f'--resume: {resume} is neither a snapshot file, a run directory, a URL, nor "latest"')
    return resume
