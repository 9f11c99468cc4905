"""The teacher takes the architecture and input normalisation its pretrained tag needs, for every tag.

Which weights were trained with QuickGELU and which normalisation they expect is a fact of their release,
written here by hand from open_clip 3.3's pretrained.py (`_VITB32`, `_VITL14`): OpenAI's CLIP and MetaCLIP use
QuickGELU, so do LAION-400M's ViT-B/32 (e31, e32) and DFN-2B's first ViT-L/14, while the LAION-2B, DataComp and
CommonPool runs use GELU; LAION-2B's ViT-L/14 (s32b_b82k) expects inputs normalised with mean = std = 0.5, the
others OpenAI's constants. A teacher
built with GELU for OpenAI's weights loads them without complaint and computes other embeddings.

The networks are not built at their size: open_clip.create_model is wrapped to build the tiny test model with
the arguments the teacher asked for, and nothing is downloaded (random weights)."""

import open_clip
import pytest
from open_clip.transformer import QuickGELU

from kd import teacher as kd_teacher
from tiny_clip import register_tiny_clip

pytestmark = pytest.mark.filterwarnings('ignore:.*RANDOM weights')

OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
QUICK_GELU = {('ViT-B-32', tag) for tag in ('openai', 'laion400m_e31', 'laion400m_e32', 'metaclip_400m', 'metaclip_fullcc')}
QUICK_GELU |= {('ViT-L-14', tag) for tag in ('openai', 'metaclip_400m', 'metaclip_fullcc', 'dfn2b')}
NORMALISATION = {('ViT-L-14', 'laion2b_s32b_b82k'): HALF}

def _tags(model):
    return [(model, tag) for tag in open_clip.list_pretrained_tags_by_model(model)]

@pytest.fixture
def built(tmp_path, monkeypatch):
    """The arguments of every open_clip.create_model call; the model built is the tiny one."""
    tiny = register_tiny_clip(str(tmp_path))
    calls = []
    create = open_clip.create_model
    def fake_create(model, pretrained=None, **kwargs):
        calls.append(dict(model=model, pretrained=pretrained, **kwargs))
        return create(tiny, pretrained=None, precision=kwargs.get('precision', 'fp32'), device=kwargs.get('device', 'cpu'),
            force_quick_gelu=kwargs.get('force_quick_gelu', False))
    monkeypatch.setattr(kd_teacher.open_clip, 'create_model', fake_create)
    monkeypatch.setattr(kd_teacher, '_model_cache', {})
    return calls

@pytest.mark.parametrize('model, tag', _tags('ViT-B-32') + _tags('ViT-L-14'))
def test_every_tag_gets_its_activation_and_normalisation(built, model, tag):
    teacher = kd_teacher.CLIPTeacher(model=model, pretrained=tag, random=True, device='cpu', log=None)
    call, = built
    assert call['model'] == model and call['pretrained'] is None  # Random weights: nothing fetched.
    quick = (model, tag) in QUICK_GELU
    assert call['force_quick_gelu'] is quick
    assert any(isinstance(m, QuickGELU) for m in teacher._clip.model.modules()) is quick
    mean, std = NORMALISATION.get((model, tag), OPENAI)
    assert teacher._clip.mean.flatten().tolist() == pytest.approx(mean) and teacher._clip.std.flatten().tolist() == pytest.approx(std)

def test_the_tables_cover_what_open_clip_lists():
    # A tag added to open_clip for these models must be classified here by hand, not pass by default.
    listed = set(_tags('ViT-B-32') + _tags('ViT-L-14'))
    assert QUICK_GELU <= listed and set(NORMALISATION) <= listed
    assert len(listed) >= 20
