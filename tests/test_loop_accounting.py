"""Every quantity the training loop hands on, against a hand computation, in a configuration where the
usual suspects differ: 4 passes of 2 images per global batch of 8 (batch_gpu < batch), 2 D steps per
training step (D_steps > 1), lazy R1 every 16 steps and path-length every 4, ADA adjusting every 4 steps.

Recorded by wrapping the loop's collaborators (nothing in the loop is a test hook): the phase, gain,
progress and images of every accumulate_gradients call, the RNG keys of every pass (phases.seed_chunk), the
EMA beta of every step (update_ema), and ADA's adjustments (ada_adjust), with the D(real) signs the loss
reported in between."""

import json

import numpy as np
import pytest
import torch

from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, run_train  # noqa: F401 (fixture)
from torch_utils import misc
from torch_utils import training_stats
from training import ada, ema, training_loop
from training import phases as training_phases
from training.dataset import ImageFolderDataset
from training.loss import StyleGAN2Loss

BATCH, BATCH_GPU, D_STEPS = 8, 2, 2
ROUNDS = BATCH // BATCH_GPU
STEPS = 17  # Steps 0..16: R1 at 0 and 16, path length at 0, 4, 8, 12, 16.
STEP_NIMG = BATCH * D_STEPS
EMA_KIMG, EMA_RAMPUP, ADA_KIMG, ADA_TARGET = 0.05, 0.5, 2, 0.6

def _options(tmp_path, data):
    result = run_train(['--outdir', str(tmp_path / 'dry'), '--data', data, '--dry-run', '--aug=ada', '--target=0.6']
        + [a for a in TINY_ARGS if not a.startswith(('--batch', '--mbstd-group'))] + [f'--batch={BATCH}', '--mbstd-group=1'])
    assert result.exit_code == 0, result.output
    c = json.loads(result.output[result.output.index('{'):result.output.index('\nOutput directory')])
    for key in ('launch_kwargs', 'data_fingerprint', 'run_dir', 'device'):
        c.pop(key)
    c.update(batch_gpu=BATCH_GPU, D_steps=D_STEPS, G_reg_interval=4, D_reg_interval=16, total_kimg=STEPS * STEP_NIMG / 1000,
        kimg_per_tick=1000, image_snapshot_ticks=None, network_snapshot_ticks=None, ema_kimg=EMA_KIMG, ema_rampup=EMA_RAMPUP,
        ada_kimg=ADA_KIMG, ada_interval=4)
    return c

@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('accounting')
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=10)
    c = _options(tmp_path, data)
    calls, keys, betas, adjusts, signs = [], [], [], [], []
    original = dict(acc=StyleGAN2Loss.accumulate_gradients, seed=training_phases.seed_chunk, ema=ema.update_ema,
        ada=ada.ada_adjust, report=training_stats.report)
    def accumulate(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        calls.append(dict(phase=phase, gain=gain, cur_nimg=cur_nimg, reals=real_img.clone(), z=gen_z.shape[0]))
        return original['acc'](self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)
    def seed_chunk(*args):
        keys.append(args)
        return original['seed'](*args)
    def update_ema(G, G_ema, beta):
        betas.append(beta)
        return original['ema'](G, G_ema, beta)
    def ada_adjust(p, sign_mean, ada_target, num_images, ada_kimg):
        new_p = original['ada'](p, sign_mean, ada_target, num_images, ada_kimg)
        adjusts.append(dict(p=p, sign_mean=sign_mean, target=ada_target, num_images=num_images, ada_kimg=ada_kimg, new_p=new_p,
            signs=list(signs)))
        signs.clear()
        return new_p
    def report(name, value):
        if name == 'Loss/signs/real':
            signs.extend(value.detach().flatten().tolist())
        return original['report'](name, value)
    patches = [(StyleGAN2Loss, 'accumulate_gradients', accumulate), (training_phases, 'seed_chunk', seed_chunk),
        (ema, 'update_ema', update_ema), (ada, 'ada_adjust', ada_adjust), (training_stats, 'report', report)]
    mp = pytest.MonkeyPatch()
    for obj, name, fn in patches:
        mp.setattr(obj, name, fn)
    try:
        torch.set_num_threads(1)
        training_loop.training_loop(run_dir=str(tmp_path), device='cpu', **c)
    finally:
        mp.undo()
    return dict(calls=calls, keys=keys, betas=betas, adjusts=adjusts, c=c, data=data)

def _expected_phases(step):
    """(name, phase index, gain) of every phase a step runs, by hand: G main and reg, D main twice, D reg."""
    phases = [('Gmain', 0, 1 / ROUNDS)]
    if step % 4 == 0:
        phases.append(('Greg', 1, 4 / ROUNDS))
    phases += [('Dmain', 2, 1 / ROUNDS), ('Dmain', 3, 1 / ROUNDS)]
    if step % 16 == 0:
        phases.append(('Dreg', 4, 16 / ROUNDS))
    return phases

def test_phases_gains_and_progress(recorded):
    expected = [(name, gain, step * STEP_NIMG) for step in range(STEPS) for name, _idx, gain in _expected_phases(step)
        for _round in range(ROUNDS)]
    got = [(call['phase'], call['gain'], call['cur_nimg']) for call in recorded['calls']]
    assert got == expected
    assert all(call['reals'].shape[0] == call['z'] == BATCH_GPU for call in recorded['calls'])

def test_rng_keys_name_step_phase_and_pass(recorded):
    seed = recorded['c']['random_seed']
    expected = [(seed, step, idx, r) for step in range(STEPS) for _name, idx, _gain in _expected_phases(step) for r in range(ROUNDS)]
    assert recorded['keys'] == expected

def test_each_D_step_sees_its_own_slice_of_the_data_stream(recorded):
    c = recorded['c']
    dataset = ImageFolderDataset(path=recorded['data'], use_labels=False, xflip=False)
    stream = iter(misc.InfiniteSampler(dataset, seed=c['random_seed']))
    order = [next(stream) for _ in range(STEPS * STEP_NIMG)]
    images = torch.stack([torch.from_numpy(dataset[i][0]) for i in order]).float() / 127.5 - 1
    calls = iter(recorded['calls'])
    for step in range(STEPS):
        for name, idx, _gain in _expected_phases(step):
            real_idx = idx - 2 if name == 'Dmain' else 0  # G and the reg phases take the step's first batch of reals.
            start = step * STEP_NIMG + real_idx * BATCH
            for r in range(ROUNDS):
                call = next(calls)
                want = images[start + r * BATCH_GPU : start + (r + 1) * BATCH_GPU]
                assert torch.equal(call['reals'], want), (step, name, r)

def test_ema_beta_of_every_step(recorded):
    # Half-life of EMA_KIMG thousand G images (BATCH per step), ramped up over the reals shown (cur_nimg before the step).
    expected = []
    for step in range(STEPS):
        ema_nimg = min(EMA_KIMG * 1000, step * STEP_NIMG * EMA_RAMPUP)
        expected.append(0.5 ** (BATCH / max(ema_nimg, 1e-8)))
    assert recorded['betas'] == pytest.approx(expected, rel=1e-12)
    assert expected[0] == 0 and 0 < expected[1] < expected[-1] < 1  # The fixture spans the ramp-up and its end.

def test_ada_steps(recorded):
    adjusts = recorded['adjusts']
    assert len(adjusts) == STEPS // 4  # After steps 4, 8, 12, 16 (batch_idx counts from 1 after a step).
    p = 0.0
    for a in adjusts:
        assert (a['num_images'], a['ada_kimg'], a['target']) == (4 * STEP_NIMG, ADA_KIMG, ADA_TARGET)
        assert a['p'] == pytest.approx(p, abs=1e-7)
        assert a['sign_mean'] == pytest.approx(np.mean(a['signs']), abs=1e-6)  # Every D(real) sign since the last step.
        expected_p = max(p + np.sign(a['sign_mean'] - ADA_TARGET) * 4 * STEP_NIMG / (ADA_KIMG * 1000), 0.0)
        assert a['new_p'] == pytest.approx(expected_p, abs=1e-7)
        p = a['new_p']
    # Every D phase reports its reals: each step's two main phases, and R1 at step 0 (step 16 follows the last adjustment).
    assert [len(a['signs']) for a in adjusts] == [BATCH * (D_STEPS * 4 + 1)] + [BATCH * D_STEPS * 4] * 3
