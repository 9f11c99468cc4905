"""KDTerms: the KD-DLGAN loss terms the training loss adds in D's main phase (and, with --kd-div,
in G's phase). build_kd_terms validates the --kd-* options, builds the teacher, the prompt
embeddings and D's KD head."""

import math
import os
import random

import torch

from kd import agkd
from kd import cgkd
from kd.heads import KDHead
from kd.prompts import resolve_prompts
from kd.teacher import CLIPTeacher
from kd.teacher import CLIP_NORMS
from kd.teacher import PRECISIONS
from kd.teacher import RESIZE_MODES
from torch_utils import training_stats

KD_PARTS = ('agg', 'corr')
TEACHER_KINDS = ('pretrained', 'random')
HEAD_KINDS = ('equalized', 'spectral')

#----------------------------------------------------------------------------

def parse_kd_parts(kd):
    """'none' -> [], 'agg,corr' -> ['agg', 'corr'] (also accepts a list)."""
    if kd is None:
        return []
    items = kd if isinstance(kd, (list, tuple)) else str(kd).split(',')
    items = [str(item).strip() for item in items if str(item).strip()]
    if items == ['none']:
        return []
    unknown = [item for item in items if item not in KD_PARTS]
    if unknown or not items:
        raise ValueError(f'--kd={kd!r}: expected "none" or a comma-separated subset of {",".join(KD_PARTS)}'
                         + (f'; unknown: {",".join(unknown)}' if unknown else ''))
    return [part for part in KD_PARTS if part in items]

def _check_choice(option, value, choices):
    if value not in choices:
        raise ValueError(f'--{option}={value!r}: expected one of {", ".join(choices)}')

def _check_weight(option, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'--{option}={value!r}: expected a number') from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f'--{option}={value}: expected a finite number >= 0')
    return value

#----------------------------------------------------------------------------

class KDTerms:
    """Computes the weighted KD terms from D's augmented inputs and pooled features. Holds the
    frozen teacher and the text embeddings; the trainable head lives in D (D.kd_head)."""

    def __init__(self, D, teacher, prompts, parts, agg_weight, corr_weight, agg_p, dist, corr_norm, div_weight,
            options, global_batch=None):
        self.D = D
        self.teacher = teacher
        self.prompts = list(prompts)
        self.text = teacher.encode_text(self.prompts)  # [K, d], computed once.
        self.parts = list(parts)
        self.agg_weight = agg_weight
        self.corr_weight = corr_weight
        self.agg_p = agg_p
        self.dist = dist
        self.corr_norm = corr_norm
        self.div_weight = div_weight
        self.options = options
        self.global_batch = global_batch  # Images per D step over all passes and processes (None: one pass).
        self._step_gate = None

    def begin_phase(self, key):
        """Draw the AGKD cross-term gate once for the passes of one D phase: the gate belongs to the
        training step, so every pass and every process use the same one. key: any str/int, e.g.
        (seed, step, phase) formatted; the same key gives the same gate (exact resume)."""
        self._step_gate = agkd.sample_cross_gate(self.agg_p, random.Random(str(key)))

    def d_terms(self, real_img, real_feat, gen_img, gen_feat):
        """Weighted terms for D's main phase: 'agg' and/or 'corr_real', 'corr_fake' (scalars).
        real_img/gen_img: the augmented batches D saw; real_feat/gen_feat: D's pooled features."""
        if real_feat.ndim != 2 or gen_feat.ndim != 2:
            raise ValueError(f'KDTerms.d_terms expects pooled features [N, C], got {tuple(real_feat.shape)} '
                             f'and {tuple(gen_feat.shape)}')
        head = self.D.kd_head
        if real_img.shape[1:] != gen_img.shape[1:]:
            raise ValueError(f'KDTerms.d_terms: real and generated images differ in shape: {tuple(real_img.shape)} '
                             f'vs {tuple(gen_img.shape)}')
        teacher_feat = self.teacher.encode_images(torch.cat([real_img.detach(), gen_img.detach()])).to(real_feat.device)
        teacher_real, teacher_fake = teacher_feat.split([real_img.shape[0], gen_img.shape[0]])  # One CLIP pass.
        student_real = head(real_feat)
        student_fake = head(gen_feat)
        text = self.text.to(real_feat.device)

        terms = dict()
        if 'agg' in self.parts:
            # Drawn once per D phase by begin_phase(); without it (direct calls), from torch's global RNG.
            gate = self._step_gate if self._step_gate is not None else agkd.sample_cross_gate(self.agg_p)
            raw = agkd.agkd_loss(teacher_real, teacher_fake, student_real, student_fake, dist=self.dist,
                cross_gate=gate)
            training_stats.report('Loss/kd/agg_raw', raw.detach())
            training_stats.report('Loss/kd/agg_gate', gate)
            terms['agg'] = raw * self.agg_weight
        if 'corr' in self.parts:
            for name, teacher_feat, student_feat in [('real', teacher_real, student_real),
                                                     ('fake', teacher_fake, student_fake)]:
                raw = cgkd.cgkd_loss(teacher_feat, student_feat, text, norm=self.corr_norm, dist=self.dist)
                raw = raw * self._corr_scale(student_feat.shape[0])
                training_stats.report(f'Loss/kd/corr_{name}_raw', raw.detach())
                terms[f'corr_{name}'] = raw * self.corr_weight
        return terms

    def _corr_scale(self, pass_batch):
        """CGKD sums over the rows of the B x K correlation matrix, and the training loop averages the
        passes of a step. With 'row' normalisation the rows are independent, so scaling each pass by
        global_batch / pass_batch makes the average equal the whole-batch sum (the authors' single pass
        of 50), for any split into passes and processes. 'matrix' normalises each pass's matrix by its
        own Frobenius norm, which couples the rows: its passes are averaged unscaled (exact for one pass)."""
        if self.global_batch is None or self.corr_norm != 'row':
            return 1.0
        return self.global_batch / pass_batch

    def g_terms(self, gen_img):
        """{'div': w * diversity(rownorm(I(G(z)) T^t))} with gradient through the frozen teacher into
        the generated images when --kd-div > 0, else {}."""
        if self.div_weight == 0:
            return dict()
        feat = self.teacher.encode_images(gen_img, grad=True).to(gen_img.device)
        corr = cgkd.correlation(feat, self.text.to(gen_img.device), norm='row')
        raw = cgkd.diversity_loss(corr)
        training_stats.report('Loss/kd/div_raw', raw.detach())
        return dict(div=raw * self.div_weight)

#----------------------------------------------------------------------------

def resolve_kd_settings(kd_kwargs, class_names=None, dataset_name=None, label_dim=None, head_kind='equalized',
        fetch_weights=True):
    """What a KD run will use, resolved before training so that training_options.json records it:
    the prompt list, the head kind, the teacher's embedding width and where its weights come from.
    fetch_weights: find (or download) the CLIP weights now; offline this raises
    CLIPWeightsUnavailableError, before any run directory exists."""
    from kd import teacher as kd_teacher
    kd_clip = kd_kwargs.get('kd_clip', 'ViT-B-32')
    _name, model_cfg = kd_teacher.model_config(kd_clip)
    prompts = resolve_prompts(kd_kwargs.get('kd_prompts'), class_names=class_names, dataset_name=dataset_name, label_dim=label_dim)
    random_init = kd_kwargs.get('kd_teacher', 'pretrained') == 'random'
    if random_init:
        source = 'random weights'
    elif kd_kwargs.get('kd_clip_weights'):
        source = os.path.abspath(kd_kwargs['kd_clip_weights'])
    else:
        source = f'open_clip {kd_clip} / {kd_kwargs.get("kd_clip_pretrained", "openai")}'
    if fetch_weights and not random_init:
        checkpoint, _tag = kd_teacher.resolve_checkpoint(kd_clip, kd_kwargs.get('kd_clip_pretrained', 'openai'),
            kd_kwargs.get('kd_clip_weights'), False, kd_kwargs.get('kd_clip_cache') or kd_teacher.default_cache_dir())
        source += f' ({checkpoint})' if checkpoint and not kd_kwargs.get('kd_clip_weights') else ''
    return dict(prompt_list=list(prompts), head_kind=head_kind, embed_dim=int(model_cfg['embed_dim']), teacher_source=source)

def build_kd_terms(D, device, class_names=None, dataset_name=None, log=print, kd='none', kd_agg_weight=10,
        kd_corr_weight=10, kd_agg_p=1.0, kd_dist='l2', kd_corr_norm='row', kd_clip='ViT-B-32',
        kd_clip_pretrained='openai', kd_clip_weights=None, kd_clip_norm='clip', kd_resize='nearest',
        kd_prompts=None, kd_teacher='pretrained', kd_div=0.0, kd_clip_cache=None, kd_clip_precision='auto',
        label_dim=None, head_kind=None, prompt_list=None, embed_dim=None, teacher_source=None, global_batch=None,
        kd_preset=None, **unused_rejected):
    """Validate the --kd-* options and return a KDTerms (None for --kd=none). Attaches D.kd_head
    unless D already has one (resume)."""
    if unused_rejected:
        raise ValueError(f'build_kd_terms: unknown options: {", ".join(sorted(unused_rejected))}')
    parts = parse_kd_parts(kd)
    agg_weight = _check_weight('kd-agg-weight', kd_agg_weight)
    corr_weight = _check_weight('kd-corr-weight', kd_corr_weight)
    div_weight = _check_weight('kd-div', kd_div)
    try:
        agg_p = float(kd_agg_p)
    except (TypeError, ValueError):
        raise ValueError(f'--kd-agg-p={kd_agg_p!r}: expected a number in [0, 1]') from None
    if not 0 <= agg_p <= 1:
        raise ValueError(f'--kd-agg-p={kd_agg_p}: expected a probability in [0, 1]')
    _check_choice('kd-dist', kd_dist, agkd.DISTANCES)
    _check_choice('kd-corr-norm', kd_corr_norm, cgkd.NORMS)
    _check_choice('kd-clip-norm', kd_clip_norm, CLIP_NORMS)
    _check_choice('kd-resize', kd_resize, RESIZE_MODES)
    _check_choice('kd-teacher', kd_teacher, TEACHER_KINDS)
    _check_choice('kd-clip-precision', kd_clip_precision, PRECISIONS)
    if head_kind is None:
        head_kind = getattr(D, 'kd_head_kind', 'equalized')
    _check_choice('head_kind', head_kind, HEAD_KINDS)
    if not parts:
        if div_weight > 0:
            raise ValueError('--kd-div needs a CLIP teacher: use it together with --kd=agg, corr or agg,corr')
        return None
    feature_dim = getattr(D, 'feature_dim', None)
    if not isinstance(feature_dim, int) or feature_dim <= 0:
        raise ValueError(f'KD needs a discriminator with a positive integer feature_dim, got {feature_dim!r}')

    # A recorded prompt list (training_options.json) wins, so a resumed run distils the same prompts.
    prompts = list(prompt_list) if prompt_list else resolve_prompts(kd_prompts, class_names=class_names,
        dataset_name=dataset_name, label_dim=label_dim)
    teacher = CLIPTeacher(model=kd_clip, pretrained=kd_clip_pretrained, weights=kd_clip_weights,
        random=(kd_teacher == 'random'), resize=kd_resize, clip_norm=kd_clip_norm, device=device,
        cache_dir=kd_clip_cache, precision=kd_clip_precision, log=log)

    if embed_dim is not None and embed_dim != teacher.embed_dim:
        raise ValueError(f'the recorded KD embedding width {embed_dim} differs from CLIP {kd_clip!r}\'s {teacher.embed_dim}')
    head = getattr(D, 'kd_head', None)
    if head is None:
        D.kd_head = KDHead(in_features=feature_dim, out_features=teacher.embed_dim,
            spectral_norm=(head_kind == 'spectral')).to(device)
    elif (head.in_features, head.out_features) != (feature_dim, teacher.embed_dim):
        raise ValueError(f'D.kd_head maps {head.in_features} -> {head.out_features} features, but this run needs '
                         f'{feature_dim} -> {teacher.embed_dim} (D.feature_dim -> CLIP embed_dim of {kd_clip!r})')

    options = dict(kd=','.join(parts), kd_agg_weight=agg_weight, kd_corr_weight=corr_weight, kd_agg_p=agg_p,
        kd_dist=kd_dist, kd_corr_norm=kd_corr_norm, kd_clip=kd_clip, kd_clip_pretrained=kd_clip_pretrained,
        kd_clip_weights=kd_clip_weights, kd_clip_norm=kd_clip_norm, kd_resize=kd_resize, kd_prompts=kd_prompts,
        kd_teacher=kd_teacher, kd_div=div_weight, kd_clip_precision=kd_clip_precision, head_kind=head_kind, embed_dim=teacher.embed_dim,
        prompt_list=list(prompts), teacher_source=teacher_source, kd_preset=kd_preset)
    source = 'RANDOM weights' if kd_teacher == 'random' else (kd_clip_weights or kd_clip_pretrained)
    log(f'kd: {options["kd"]} with CLIP {kd_clip} ({source}, {teacher.precision}), {len(prompts)} prompts, '
        f'head {feature_dim} -> {D.kd_head.hidden} -> {teacher.embed_dim} ({head_kind})')
    return KDTerms(D=D, teacher=teacher, prompts=prompts, parts=parts, agg_weight=agg_weight, corr_weight=corr_weight,
        agg_p=agg_p, dist=kd_dist, corr_norm=kd_corr_norm, div_weight=div_weight, options=options, global_batch=global_batch)

#----------------------------------------------------------------------------
