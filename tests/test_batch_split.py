"""Every D-phase loss term gives the same total gradient, and the LeCam anchors the same values, for
any split of one global batch into passes (1x8, 2x4, 4x2) and over 2 gloo processes: the training
loop's arithmetic (gain = 1/passes, gradients averaged over processes) is replayed on a tiny D."""

import os

import pytest
import torch

from kd.loss import build_kd_terms
from tiny_clip import register_tiny_clip, save_tiny_clip_weights
from training.loss import BigGANLoss

N = 8  # Global batch.

class _TinyD(torch.nn.Module):
    """Per-sample D (no batch statistics) with a pooled feature for the KD head."""
    feature_dim = 6

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.out = torch.nn.Linear(6, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, img, c, return_features=False, **_kwargs):
        feat = torch.tanh(self.conv(img)).mean(dim=[2, 3])
        logits = self.out(feat)
        return (logits, feat) if return_features else logits

class _ShiftG(torch.nn.Module):
    """Deterministic fakes from z, so every split sees the same fake images."""
    def forward(self, z, c, **_kwargs):
        return torch.tanh(z[:, :3, None, None] + torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4))

def _setup(clip_dir, corr_norm='row', lecam=0.3):
    # The fixture wrote the config and weights once; spawned workers only read them (no write races).
    import open_clip
    torch.manual_seed(0)
    name = 'kd-tiny-clip'
    open_clip.add_model_config(os.path.join(clip_dir, f'{name}.json'))
    weights = os.path.join(clip_dir, 'tiny.pt')
    D = _TinyD()
    kd = build_kd_terms(D, device='cpu', log=lambda *_: None, kd='agg,corr', kd_clip=name, kd_clip_pretrained=None,
        kd_clip_weights=weights, class_names=['cat', 'dog', 'car'], kd_corr_norm=corr_norm, global_batch=N, kd_agg_p=0.5)
    loss = BigGANLoss(device='cpu', G=_ShiftG(), D=D, lecam=lecam, lecam_decay=0.9, kd=kd)
    gen = torch.Generator().manual_seed(1)
    reals = torch.rand(N, 3, 4, 4, generator=gen) * 2 - 1
    zs = torch.randn(N, 3, generator=gen)
    return D, loss, reals, zs

def _phases(D, loss, reals, zs, passes, rank=0, world=1):
    """Two D phases (the second uses the LeCam anchors of the first); returns the summed gradients."""
    per_rank = N // world
    chunk = per_rank // passes
    grads = None
    for step in range(2):
        for p in D.parameters():
            p.grad = None
        loss.begin_phase(f'0-{step}-0')
        for i in range(passes):
            lo = rank * per_rank + i * chunk
            loss.accumulate_gradients(phase='Dmain', real_img=reals[lo:lo + chunk], real_c=None, gen_z=zs[lo:lo + chunk],
                gen_c=None, gain=1 / passes, cur_nimg=step * N)
        loss.end_phase(cur_nimg=step * N)
        flat = torch.cat([p.grad.flatten() for p in D.parameters()])
        if world > 1:
            torch.distributed.all_reduce(flat)
            flat /= world
        grads = flat if grads is None else grads + flat
    return grads, (loss.lecam_anchors.real, loss.lecam_anchors.fake)

def _assert_same_gradient(got, want):
    """Equal up to float32 rounding of the largest entry: the summed gradient reaches ~600 here, whose
    rounding (~6e-5 a step) an element-wise atol of 1e-6 cannot absorb; the CPU's kernels decide which
    elements round differently. A wrong gain or a lost pass changes entries by their own size."""
    torch.testing.assert_close(got, want, rtol=1e-5, atol=4e-6 * float(want.abs().max()))

@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('split_clip'))
    save_tiny_clip_weights(register_tiny_clip(folder), os.path.join(folder, 'tiny.pt'))
    return folder

@pytest.mark.parametrize('passes', [2, 4])
def test_passes_give_the_whole_batch_gradient(clip_dir, passes):
    whole, anchors = _phases(*_setup(clip_dir), passes=1)
    split, split_anchors = _phases(*_setup(clip_dir), passes=passes)
    _assert_same_gradient(split, whole)
    assert split_anchors == pytest.approx(anchors, rel=1e-6)
    # The D parameters include the KD head: its gradient comes from the KD terms alone.
    assert whole.abs().sum() > 0

def test_kd_terms_alone_are_split_independent(clip_dir):
    # Without LeCam and with the GAN loss's share removed, only AGKD and CGKD act on the head.
    D, loss, reals, zs = _setup(clip_dir, lecam=0)
    head = [p for name, p in D.named_parameters() if name.startswith('kd_head')]
    grads = []
    for passes in (1, 2, 4):
        D, loss, reals, zs = _setup(clip_dir, lecam=0)
        _phases(D, loss, reals, zs, passes=passes)
        grads.append(torch.cat([p.grad.flatten() for name, p in D.named_parameters() if name.startswith('kd_head')]))
    assert head and grads[0].norm() > 0
    for g in grads[1:]:
        assert (g.norm() / grads[0].norm()).item() == pytest.approx(1.0, abs=1e-5)
        _assert_same_gradient(g, grads[0])

def test_matrix_norm_is_averaged_over_passes(clip_dir):
    # 'matrix' normalises each pass's matrix by its own Frobenius norm: exact for one pass only, so
    # only its scale is kept (the gradient norm stays of the same order, it does not halve per split).
    whole, _ = _phases(*_setup(clip_dir, corr_norm='matrix', lecam=0), passes=1)
    split, _ = _phases(*_setup(clip_dir, corr_norm='matrix', lecam=0), passes=4)
    assert 0.5 < (split.norm() / whole.norm()).item() < 2

def _worker(rank, init_file, clip_dir, out):
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    grads, anchors = _phases(*_setup(clip_dir), passes=2, rank=rank, world=2)
    if rank == 0:
        torch.save(dict(grads=grads, anchors=anchors), out)
    torch.distributed.destroy_process_group()

@pytest.mark.slow
def test_two_processes_give_the_whole_batch_gradient(clip_dir, tmp_path):
    out = str(tmp_path / 'two.pt')
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path / 'init'), clip_dir, out), nprocs=2)
    two = torch.load(out)
    whole, anchors = _phases(*_setup(clip_dir), passes=1)
    _assert_same_gradient(two['grads'], whole)
    assert two['anchors'] == pytest.approx(anchors, rel=1e-6)
