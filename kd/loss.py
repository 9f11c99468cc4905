"""KDTerms: the KD-DLGAN loss terms the training loss adds in D's main phase (and, with --kd-div,
in G's phase). build_kd_terms validates the --kd-* options, builds the teacher, the prompt
embeddings and D's KD head."""

import os
import random

import torch

from kd import agkd
from kd import cgkd
from kd.heads import KDHead
from kd.prompts import resolve_prompts
from kd import options as kd_options
from kd import teacher as kd_teacher
from kd.teacher import CLIPTeacher
from torch_utils import training_stats

HEAD_KINDS = ('equalized', 'spectral')

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
    o = dict(kd_options.DEFAULTS, **{name: value for name, value in kd_kwargs.items() if name in kd_options.DEFAULTS})
    _name, model_cfg = kd_teacher.model_config(o['kd_clip'])
    prompts = resolve_prompts(o['kd_prompts'], class_names=class_names, dataset_name=dataset_name, label_dim=label_dim)
    random_init = o['kd_teacher'] == 'random'
    if random_init:
        source = 'random weights'
    elif o['kd_clip_weights']:
        source = os.path.abspath(o['kd_clip_weights'])
    else:
        source = f'open_clip {o["kd_clip"]} / {o["kd_clip_pretrained"]}'
    if fetch_weights and not random_init:
        checkpoint, _tag = kd_teacher.resolve_checkpoint(o['kd_clip'], o['kd_clip_pretrained'], o['kd_clip_weights'], False,
            kd_kwargs.get('kd_clip_cache') or kd_teacher.default_cache_dir())
        source += f' ({checkpoint})' if checkpoint and not o['kd_clip_weights'] else ''
    return dict(prompt_list=list(prompts), head_kind=head_kind, embed_dim=int(model_cfg['embed_dim']), teacher_source=source)

def build_kd_terms(D, device, class_names=None, dataset_name=None, log=print, label_dim=None, head_kind=None, prompt_list=None,
        embed_dim=None, teacher_source=None, global_batch=None, kd_preset=None, kd_clip_cache=None, kd='none', **options):
    """Check the --kd-* options (kd/options.py: defaults for those not given) and return a KDTerms (None for
    --kd=none). Attaches D.kd_head unless D already has one (resume)."""
    unknown = set(options) - set(kd_options.DEFAULTS)
    if unknown:
        raise ValueError(f'build_kd_terms: unknown options: {", ".join(sorted(unknown))}')
    parts = kd_options.parse_kd(kd)
    o = kd_options.check_values(dict(kd_options.DEFAULTS, **options))
    if head_kind is None:
        head_kind = getattr(D, 'kd_head_kind', 'equalized')
    if head_kind not in HEAD_KINDS:
        raise ValueError(f'--head_kind={head_kind!r}: expected one of {", ".join(HEAD_KINDS)}')
    if not parts:
        if o['kd_div'] > 0:
            raise ValueError('--kd-div needs a CLIP teacher: use it together with --kd=agg, corr or agg,corr')
        return None
    feature_dim = getattr(D, 'feature_dim', None)
    if not isinstance(feature_dim, int) or feature_dim <= 0:
        raise ValueError(f'KD needs a discriminator with a positive integer feature_dim, got {feature_dim!r}')

    # A recorded prompt list (training_options.json) wins, so a resumed run distils the same prompts.
    prompts = list(prompt_list) if prompt_list else resolve_prompts(o['kd_prompts'], class_names=class_names,
        dataset_name=dataset_name, label_dim=label_dim)
    teacher = CLIPTeacher(model=o['kd_clip'], pretrained=o['kd_clip_pretrained'], weights=o['kd_clip_weights'],
        random=(o['kd_teacher'] == 'random'), resize=o['kd_resize'], clip_norm=o['kd_clip_norm'], device=device,
        cache_dir=kd_clip_cache, precision=o['kd_clip_precision'], log=log)

    if embed_dim is not None and embed_dim != teacher.embed_dim:
        raise ValueError(f'the recorded KD embedding width {embed_dim} differs from CLIP {o["kd_clip"]!r}\'s {teacher.embed_dim}')
    head = getattr(D, 'kd_head', None)
    if head is None:
        D.kd_head = KDHead(in_features=feature_dim, out_features=teacher.embed_dim,
            spectral_norm=(head_kind == 'spectral')).to(device)
    elif (head.in_features, head.out_features) != (feature_dim, teacher.embed_dim):
        raise ValueError(f'D.kd_head maps {head.in_features} -> {head.out_features} features, but this run needs '
                         f'{feature_dim} -> {teacher.embed_dim} (D.feature_dim -> CLIP embed_dim of {o["kd_clip"]!r})')

    options = dict(kd=','.join(parts), **o, head_kind=head_kind, embed_dim=teacher.embed_dim, prompt_list=list(prompts),
        teacher_source=teacher_source, kd_preset=kd_preset)
    source = 'RANDOM weights' if o['kd_teacher'] == 'random' else (o['kd_clip_weights'] or o['kd_clip_pretrained'])
    log(f'kd: {options["kd"]} with CLIP {o["kd_clip"]} ({source}, {teacher.precision}), {len(prompts)} prompts, '
        f'head {feature_dim} -> {D.kd_head.hidden} -> {teacher.embed_dim} ({head_kind})')
    return KDTerms(D=D, teacher=teacher, prompts=prompts, parts=parts, agg_weight=o['kd_agg_weight'], corr_weight=o['kd_corr_weight'],
        agg_p=o['kd_agg_p'], dist=o['kd_dist'], corr_norm=o['kd_corr_norm'], div_weight=o['kd_div'], options=options,
        global_batch=global_batch)

#----------------------------------------------------------------------------
