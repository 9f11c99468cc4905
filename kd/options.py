"""The --kd-* options: their one parser, defaults, presets and checks, and the builder that turns
command-line values into kd_kwargs. Light on purpose (no open_clip at import): train.py imports it
for every run. kd/loss.py's build_kd_terms completes and checks what it receives with the same functions."""

import math

from kd.agkd import DISTANCES
from kd.cgkd import NORMS

KD_PARTS = ('agg', 'corr')
TEACHER_KINDS = ('pretrained', 'random')
# The values the teacher accepts (kd/teacher.py imports them from here: it imports open_clip, this module must not).
CLIP_NORMS = ('clip', 'none')
RESIZE_MODES = ('nearest', 'bilinear', 'bicubic')
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')

# Defaults of the options (docs/kd.md), in training_options.json's order.
DEFAULTS = dict(kd_agg_weight=10.0, kd_corr_weight=10.0, kd_agg_p=1.0, kd_dist='l2', kd_corr_norm='row', kd_clip='ViT-B-32',
    kd_clip_pretrained='openai', kd_clip_weights=None, kd_clip_norm='clip', kd_resize='nearest', kd_prompts=None,
    kd_teacher='pretrained', kd_div=0.0, kd_clip_precision='auto')
NEEDS_PART = dict(kd_agg_weight='agg', kd_agg_p='agg', kd_corr_weight='corr', kd_corr_norm='corr')

# --kd-preset: 'project' is this codebase's defaults (docs/kd.md); 'authors' is the setup of the KD-DLGAN
# authors' code: CLIP fed the raw [-1, 1] batch, nearest x7 resize (32 -> 224), the ten CIFAR-10 prompts
# "a airplane" ... "a truck" for CIFAR-10 and CIFAR-100 alike, unnormalised text embeddings (always), and
# LeCam 0.3 (their train.sh runs the lc-DiffAugment scripts). Single --kd-* options still override.
KD_PRESETS = {
    'project': dict(),
    'authors': dict(kd_clip_norm='none', kd_resize='nearest', kd_prompts='cifar10-authors'),
}
KD_PRESET_LECAM = dict(project=0.0, authors=0.3)

#----------------------------------------------------------------------------

def parse_kd(kd):
    """'none' -> [], 'corr,agg' -> ['agg', 'corr'] (canonical order); also takes a list."""
    items = kd if isinstance(kd, (list, tuple)) else ('none' if kd is None else str(kd)).split(',')
    items = [str(item).strip() for item in items]
    if items == ['none'] or (isinstance(kd, (list, tuple)) and not items):
        return []
    if not items or any(item not in KD_PARTS for item in items) or len(set(items)) != len(items):
        raise ValueError(f'--kd: expected none, agg, corr or agg,corr; got "{kd if not isinstance(kd, (list, tuple)) else ",".join(kd)}"')
    return [part for part in KD_PARTS if part in items]

def _flag(name):
    return '--' + name.replace('_', '-')

def check_values(options):
    """Check the values of complete options (DEFAULTS filled in); returns them with the weights as floats."""
    out = dict(options)
    for name in ('kd_agg_weight', 'kd_corr_weight', 'kd_div'):
        try:
            out[name] = float(options[name])
        except (TypeError, ValueError):
            raise ValueError(f'{_flag(name)}={options[name]!r}: expected a number') from None
        if not (math.isfinite(out[name]) and out[name] >= 0):
            raise ValueError(f'{_flag(name)} must be a finite number >= 0, got {options[name]}')
    try:
        out['kd_agg_p'] = float(options['kd_agg_p'])
    except (TypeError, ValueError):
        raise ValueError(f'--kd-agg-p={options["kd_agg_p"]!r}: expected a number in [0, 1]') from None
    if not 0 <= out['kd_agg_p'] <= 1:
        raise ValueError('--kd-agg-p must be between 0 and 1')
    for name, choices in [('kd_dist', DISTANCES), ('kd_corr_norm', NORMS), ('kd_clip_norm', CLIP_NORMS), ('kd_resize', RESIZE_MODES),
            ('kd_teacher', TEACHER_KINDS), ('kd_clip_precision', PRECISIONS)]:
        if options[name] not in choices:
            raise ValueError(f'{_flag(name)}={options[name]!r}: expected one of {", ".join(choices)}')
    return out

def build_kd(o, facts, head_kind, fetch_weights=True):
    """kd_kwargs from the command-line values `o` (every --kd-* option; None = not given), and the run-name part.
    facts: the dataset's name, class_names and label_dim (for the prompts). fetch_weights: find or download the
    CLIP weights now (kd.teacher.CLIPWeightsUnavailableError offline), before any run directory exists."""
    parts = parse_kd(o['kd'])
    for name in DEFAULTS:
        if o[name] is None:
            continue
        if len(parts) == 0:
            raise ValueError(f'{_flag(name)} has no effect without --kd')
        if name in NEEDS_PART and NEEDS_PART[name] not in parts:
            raise ValueError(f'{_flag(name)} has no effect unless --kd includes {NEEDS_PART[name]}')
    if o['kd_preset'] != 'project' and len(parts) == 0:
        raise ValueError('--kd-preset has no effect without --kd')
    if o['kd_prompts'] is not None and 'corr' not in parts and not (o['kd_div'] or 0) > 0:
        raise ValueError('--kd-prompts has no effect unless --kd includes corr or --kd-div is positive')
    if len(parts) == 0:
        return dict(kd_kwargs=dict(kd='none')), ''
    defaults = dict(DEFAULTS, **KD_PRESETS[o['kd_preset']])
    kd_kwargs = dict(kd=','.join(parts), **{name: default if o[name] is None else o[name] for name, default in defaults.items()})
    check_values(kd_kwargs)
    kd_kwargs['kd_preset'] = o['kd_preset']
    from kd.loss import resolve_kd_settings  # Only for a KD run: it imports open_clip.
    kd_kwargs.update(resolve_kd_settings(kd_kwargs, class_names=facts['class_names'], dataset_name=facts['name'],
        label_dim=facts['label_dim'], head_kind=head_kind, fetch_weights=fetch_weights))
    return dict(kd_kwargs=kd_kwargs), '-kd-' + kd_kwargs['kd'].replace(',', '-')
