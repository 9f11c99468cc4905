"""Where a run resumes from, and how: continue that run exactly, or transfer its weights.

--resume names a snapshot (a pickle or weights file, a URL, a run directory, 'latest', the ADA paper's
transfer sources) or asks for 'auto'. What happens to it is decided from facts, before any run
directory exists:

- continue: the snapshot sits in a run directory of this codebase (beside its training_options.json),
  holds a training state, and that run trained on the same data (content fingerprint) with the same
  options, apart from those in MAY_CHANGE. Progress, optimizers, ADA p, loss state and RNG come back.
- transfer: anything else, as StyleGAN2-ADA does for every pickle: weights that match by name and
  shape, progress from 0, ada_kimg=100, no EMA ramp-up.

--resume-mode=continue|transfer forces one; continue on a mismatch is an error naming each difference.
Errors are ResumeError (a ValueError) with one line for the user; train.py shows it as a usage error.
"""

import json
import os

import dnnlib
from training import run_dir as run_names
from training.snapshot import load_network_pkl

class ResumeError(ValueError):
    pass

MODES = ('auto', 'continue', 'transfer')

# Options that may change on a continuation, with the flag that sets them. The training itself does not
# depend on them (length, intervals, evaluation, processes and batch split, device, file outputs).
MAY_CHANGE = {
    'total_kimg': '--kimg', 'kimg_per_tick': '--tick', 'image_snapshot_ticks': '--snap', 'network_snapshot_ticks': '--snap',
    'snapshot_keep': '--keep', 'metrics': '--metrics', 'metric_data': '--metric-data', 'detector_dir': '--detector-dir',
    'data_loader_kwargs': '--workers', 'launch_kwargs': '--peer-timeout', 'num_gpus': '--gpus', 'batch_gpu': '--batch-gpu',
    'device': '--device', 'write_weights': '--weights-only', 'cudnn_benchmark': '--nobench',
}
# Records of the run rather than options of it; the data are compared by fingerprint, so a moved copy continues,
# and the teacher by model and tag, not by the cache file its weights were found in (another node, another cache).
_RECORDS = ('run_dir', 'resume_pkl', 'resume_mode', 'resume_state', 'data_fingerprint', 'training_set_kwargs.path',
    'kd_kwargs.teacher_source')
# Set by how the run began (from scratch or by transfer): a continuation takes them from the run.
FROM_THE_RUN = ('ada_kimg', 'ema_rampup')
TRANSFER_SETTINGS = dict(ada_kimg=100, ema_rampup=None)  # StyleGAN2-ADA's train.py for any --resume pickle.

# Flags of the options most often changed, for the messages (longest matching prefix wins).
_FLAGS = {
    'random_seed': '--seed', 'batch_size': '--batch', 'loss_kwargs.r1_gamma': '--gamma', 'G_opt_kwargs.lr': '--glr',
    'D_opt_kwargs.lr': '--dlr', 'kd_kwargs': '--kd', 'training_set_kwargs.use_labels': '--cond',
    'training_set_kwargs.xflip': '--mirror', 'training_set_kwargs.subset': '--subset',
    'training_set_kwargs.subset_seed': '--subset-seed', 'augment_kwargs': '--aug/--augpipe', 'ada_target': '--aug/--target',
    'augment_p': '--p', 'loss_kwargs.diffaugment': '--diffaugment', 'loss_kwargs.lecam': '--lecam',
    'G_kwargs.channel_base': '--cbase', 'D_kwargs.channel_base': '--cbase', 'G_kwargs.channel_max': '--cmax',
    'D_kwargs.channel_max': '--cmax', 'G_kwargs.mapping_kwargs.num_layers': '--map-depth',
    'D_kwargs.epilogue_kwargs.mbstd_group_size': '--mbstd-group', 'allow_tf32': '--allow-tf32', 'data': '--data',
}

#----------------------------------------------------------------------------
# Comparing the options of a run with the options of this command.

_ABSENT = '(unset)'

def _flatten(value, prefix=''):
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: value}

def _ignored(key):
    return any(key == k or key.startswith(k + '.') for k in list(MAY_CHANGE) + list(_RECORDS) + list(FROM_THE_RUN))

def _same_data(recorded, requested):
    old, new = recorded.get('data_fingerprint'), requested.get('data_fingerprint')
    if old is not None and new is not None:
        return old == new
    path = lambda c: os.path.abspath(c.get('training_set_kwargs', {}).get('path', ''))  # Runs older than fingerprints.
    return path(recorded) == path(requested)

def option_differences(recorded, requested):
    """[(key, old, new)] of the options that may not change on a continuation (dotted keys)."""
    old, new = (_flatten(json.loads(json.dumps(c))) for c in (recorded, requested))  # Compared as the file holds them.
    diffs = [(key, old.get(key, _ABSENT), new.get(key, _ABSENT)) for key in sorted(set(old) | set(new))
        if not _ignored(key) and old.get(key, _ABSENT) != new.get(key, _ABSENT)]
    # Where a key differs on both sides (e.g. kd_kwargs.kd), the keys that exist on one side only follow from it.
    changed_groups = {key.split('.')[0] for key, a, b in diffs if _ABSENT not in (a, b)}
    diffs = [d for d in diffs if d[0].split('.')[0] not in changed_groups or _ABSENT not in d[1:]]
    if not _same_data(recorded, requested):
        diffs.insert(0, ('data', recorded.get('training_set_kwargs', {}).get('path'),
            requested.get('training_set_kwargs', {}).get('path')))
    return diffs

def describe_differences(diffs):
    def flag(key):
        prefixes = [p for p in _FLAGS if key == p or key.startswith(p + '.')]
        return f'{_FLAGS[max(prefixes, key=len)]} ({key})' if prefixes else key
    return '; '.join(f'{flag(key)}: {old!r} -> {new!r}' if key != 'data' else f'--data: other content ({old} -> {new})'
        for key, old, new in diffs)

#----------------------------------------------------------------------------
# Finding the snapshot.

RESUME_SPECS = {  # The ADA paper's transfer sources, by the names StyleGAN2-ADA's train.py gives them (resume_specs).
    name: 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/' + file
    for name, file in [('ffhq256', 'ffhq-res256-mirror-paper256-noaug.pkl'), ('ffhq512', 'ffhq-res512-mirror-stylegan2-noaug.pkl'),
        ('ffhq1024', 'ffhq-res1024-mirror-stylegan2-noaug.pkl'),
        ('celebahq256', 'celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl'),
        ('lsundog256', 'lsundog-res256-paper256-kimg100000-noaug.pkl')]
}

def run_options(pkl):
    """The training_options.json of the run directory the snapshot sits in, or None."""
    if dnnlib.util.is_url(pkl) or not os.path.isfile(pkl):
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(pkl)), 'training_options.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def resolve_source(resume, outdir):
    """A snapshot path or URL for every --resume value except auto."""
    if resume in RESUME_SPECS:
        return RESUME_SPECS[resume]  # Fetched through open_url's cache when loaded.
    if resume == 'latest':
        for name in reversed(run_names.run_dirs(outdir)):
            pkl = run_names.latest_snapshot(os.path.join(outdir, name))
            if pkl is not None:
                return pkl
        raise ResumeError(f'--resume=latest: no run directory with a network snapshot in {outdir} '
            f'(--resume=auto starts a new run instead)')
    if os.path.isdir(resume):
        pkl = run_names.latest_snapshot(resume)
        if pkl is None:
            raise ResumeError(f'--resume: {resume} holds no network-snapshot-*.pkl')
        return pkl
    if not dnnlib.util.is_url(resume, allow_file_urls=True) and not os.path.isfile(resume):
        raise ResumeError(f'--resume: {resume} is neither a snapshot file, a run directory, a URL, "latest" nor "auto"')
    return resume

def find_continuable(outdir, requested):
    """auto: (the newest snapshot of the newest run in outdir that this command continues, notes on the
    newer runs passed over); (None, notes) when there is none."""
    notes = []
    for name in reversed(run_names.run_dirs(outdir)):
        pkl = run_names.latest_snapshot(os.path.join(outdir, name))
        if pkl is None:
            continue
        recorded = run_options(pkl)
        diffs = option_differences(recorded, requested) if recorded is not None else [('training_options.json', 'missing', '')]
        if not diffs:
            return pkl, notes
        notes.append(f'{name} not continued: {describe_differences(diffs[:3])}{" ..." if len(diffs) > 3 else ""}')
    return None, notes

def load_checked(pkl, resolution, channels, backbone):
    """Load the snapshot now, before any run directory exists: one clear error for a corrupt file, a pickle
    that holds no networks, or networks that cannot fit the data (resolution, channels, backbone).
    Label dimensions may differ: transfer learning leaves the label embedding at its initialisation."""
    try:
        data = load_network_pkl(pkl)
    except (OSError, ValueError) as err:
        raise ResumeError(f'--resume: {err}')
    G = data['G_ema']
    have, want = (int(G.img_resolution), int(G.img_channels)), (resolution, channels)
    if have != want:
        describe = lambda r, ch: f'{r}x{r}, {ch} channel{"s" if ch != 1 else ""}'
        raise ResumeError(f'--resume: the network in {pkl} is {describe(*have)}, but --data is {describe(*want)}; '
            f'resume from a network trained on data of this shape, or change --data')
    is_biggan = not (hasattr(G, 'mapping') and hasattr(G, 'synthesis'))  # StyleGAN2's G has both, BigGAN's neither.
    if is_biggan != (backbone == 'biggan'):
        raise ResumeError(f'--resume: the network in {pkl} is a {"BigGAN" if is_biggan else "StyleGAN2"} generator, '
            f'but --cfg selects {"BigGAN" if backbone == "biggan" else "StyleGAN2"}; pick the matching --cfg')
    return data

#----------------------------------------------------------------------------
# The decision.

def decide(pkl, requested, mode='auto', has_state=True):
    """('continue' or 'transfer', the reason in a few words) for resuming `pkl` with the options `requested`."""
    if mode not in MODES:
        raise ResumeError(f'--resume-mode must be one of {", ".join(MODES)}, got {mode!r}')
    if mode == 'transfer':
        return 'transfer', 'asked for with --resume-mode=transfer'
    recorded = run_options(pkl)
    if recorded is None:
        why = 'not in a run directory of this codebase (no training_options.json beside it)'
    elif not has_state:
        why = 'the snapshot holds no training state'
    else:
        diffs = option_differences(recorded, requested)
        why = f'options differ from its run: {describe_differences(diffs)}' if diffs else None
    if why is None:
        return 'continue', 'same data and options as its run'
    if mode == 'continue':
        raise ResumeError(f'--resume-mode=continue: {pkl} cannot be continued: {why}')
    return 'transfer', why

def run_settings(pkl, mode):
    """The FROM_THE_RUN settings, set by how a run began: StyleGAN2-ADA's for a transfer, the run's own for a
    continuation (a key the run did not have is absent here, and dropped from the options)."""
    if mode == 'transfer':
        return dict(TRANSFER_SETTINGS)
    recorded = run_options(pkl)
    return {key: recorded[key] for key in FROM_THE_RUN if key in recorded}

def _progress(data):
    return data['resume_state']['cur_nimg'] if data['resume_state'] is not None else 0

def choose(resume, resume_mode, outdir, requested, resolution, channels, backbone):
    """The whole --resume decision: (snapshot or None for a new run, 'continue' or 'transfer', lines to log,
    the snapshot's progress in images)."""
    notes = []
    if resume == 'auto' or resume.startswith('auto,'):
        fallback = resume[len('auto,'):] or None
        if fallback is None and resume_mode != 'auto':
            raise ResumeError('--resume-mode has no effect with --resume=auto, which continues a run of --outdir or '
                'starts a new one; --resume=auto,SOURCE applies it to SOURCE')
        pkl, notes = find_continuable(outdir, requested)
        if pkl is not None:
            data = load_checked(pkl, resolution, channels, backbone)
            mode, why = decide(pkl, requested, 'continue', has_state=data['resume_state'] is not None)
            return pkl, mode, notes + [f'Resume (--resume=auto): continuing {pkl} ({why})'], _progress(data)
        if fallback is None:
            return None, None, notes + [f'Resume (--resume=auto): no run in {outdir} to continue; starting a new run'], 0
        resume = fallback
    pkl = resolve_source(resume, outdir)
    data = load_checked(pkl, resolution, channels, backbone)
    mode, why = decide(pkl, requested, resume_mode, has_state=data['resume_state'] is not None)
    what = 'continuing' if mode == 'continue' else 'transfer learning (weights only, progress from 0) from'
    return pkl, mode, notes + [f'Resume: {what} {pkl} ({why})'], _progress(data)

def build_resume(resume, resume_mode, outdir, requested, facts, backbone):
    """The resume builder: (decision, run-name part). decision.kwargs: resume_pkl and resume_mode;
    decision.settings: run_settings() to apply over the other builders' values; decision.notes: lines for the
    log; decision.finished: the continued run already reached total_kimg."""
    decision = dnnlib.EasyDict(kwargs=dict(resume_pkl=None, resume_mode=None), settings=dict(), notes=[], finished=False)
    if resume is None:
        if resume_mode != 'auto':
            raise ResumeError('--resume-mode has no effect without --resume')
        return decision, ''
    pkl, mode, decision.notes, cur_nimg = choose(resume, resume_mode, outdir, requested=requested,
        resolution=facts['resolution'], channels=facts['channels'], backbone=backbone)
    if pkl is None:
        return decision, ''
    decision.kwargs = dict(resume_pkl=pkl, resume_mode=mode)
    decision.settings = run_settings(pkl, mode)
    if mode == 'continue' and cur_nimg >= requested['total_kimg'] * 1000:
        decision.notes.append(f'The run already reached {requested["total_kimg"]:g} kimg in {pkl}; nothing to train '
            f'(a larger --kimg continues it).')
        decision.finished = True
    return decision, ('-resume' if mode == 'continue' else '-transfer')

#----------------------------------------------------------------------------
