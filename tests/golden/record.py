"""Golden outputs: what a user and a snapshot see, recorded once and compared exactly after a change
that must not change behaviour (the restructuring of issue 21 was made against these).

    python tests/golden/record.py            # write tests/golden/golden.json from this tree
    python tests/golden/record.py --check    # compare this tree with it (tests/test_golden.py does this)
    python tests/golden/record.py --make-old-run   # (once, on the old commit) write tests/golden/old_run

Recorded: tiny CPU runs (auto with ADA, R1, path length and style mixing; cifar with KD on the tiny
CLIP, LeCam and DiffAugment; biggan-cifar with LeCam; a run stopped mid-tick by a stop request and
continued with --resume=auto; two gloo processes), each as a SHA-256 of every tensor of G, D, G_ema,
the augment pipe and the training state of every snapshot, the file names, stats.jsonl
without timings and resources, and training_options.json with the temporary paths replaced; the
`train.py -n` output of option combinations (errors included); every tool's --help.
"""

import contextlib
import glob
import hashlib
import io
import json
import os
import pickle
import random
import sys
import tempfile

import numpy as np
import torch
from click.testing import CliRunner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, 'golden.json')
OLD_RUN = os.path.join(HERE, 'old_run')
for path in (REPO, os.path.dirname(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

TOOLS = ['train', 'calc_metrics', 'generate', 'dataset_tool', 'projector', 'style_mixing', 'legacy', 'export_weights', 'gen_video',
    'memorisation']
TINY = ['--cbase=256', '--cmax=32', '--map-depth=2', '--mbstd-group=2', '--batch=2', '--tick=0.004', '--metrics=none',
    '--workers=0', '--snap=1', '--device=cpu']

#----------------------------------------------------------------------------
# Digests.

def environment():
    """What the exact hashes depend on besides the code: another CPU kernel set may round differently."""
    return dict(torch=torch.__version__, numpy=np.__version__, cpu=torch.backends.cpu.get_cpu_capability())

def _tensor(t):
    t = t.detach().cpu().contiguous()
    data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() > 0 else b''
    return dict(sha=f'{t.dtype}{list(t.shape)}:' + hashlib.sha256(data).hexdigest()[:20],
        sum=float(t.double().sum()) if t.is_floating_point() or t.dtype in (torch.int64, torch.int32) else None)

def digest(obj):
    """Nested dict of tensor digests and plain values for a module, state dict or list."""
    if isinstance(obj, torch.nn.Module):
        return {name: _tensor(t) for name, t in list(obj.named_parameters()) + list(obj.named_buffers())}
    if isinstance(obj, torch.Tensor):
        return _tensor(obj)
    if isinstance(obj, np.ndarray):
        return _tensor(torch.from_numpy(np.ascontiguousarray(obj)))
    if isinstance(obj, dict):
        return {str(key): digest(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [digest(value) for value in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)

def _normalise(text, paths):
    for path, name in paths.items():
        text = text.replace(path, name)
    return text

def run_record(outdir, paths):
    """The newest run directory of outdir: every snapshot's digests, file names, stats and options."""
    from training.snapshot import load_network_pkl
    run_dir = sorted(glob.glob(os.path.join(outdir, '0*')))[-1]
    pkls = sorted(os.path.basename(p) for p in glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')))
    # code.diff: only in a dirty work tree; a TensorBoard events file is named by time, host and process.
    files = sorted('events.out.tfevents.*' if name.startswith('events.out.tfevents.') else name
        for name in os.listdir(run_dir) if name != 'code.diff')
    record = dict(run_dir=os.path.basename(run_dir), files=files, snapshots=dict())
    for pkl in pkls:
        data = load_network_pkl(os.path.join(run_dir, pkl))
        record['snapshots'][pkl] = {key: digest(data.get(key)) for key in
            ['G', 'D', 'G_ema', 'augment_pipe', 'resume_state', 'training_set_kwargs']}
    stats = []
    for line in open(os.path.join(run_dir, 'stats.jsonl')):
        entry = json.loads(line)
        stats.append({k: v for k, v in entry.items() if not k.startswith(('Timing/', 'Resources/')) and k != 'timestamp'})
    record['stats'] = stats
    record = json.loads(_normalise(json.dumps(record), paths))
    record['options'] = json.loads(_normalise(open(os.path.join(run_dir, 'training_options.json')).read(), paths))
    record['provenance_argv'] = _normalise(json.dumps(json.load(open(os.path.join(run_dir, 'provenance.json'))).get('argv')), paths)
    return record

#----------------------------------------------------------------------------
# Fixtures: tiny datasets and the tiny CLIP.

def make_zip(path, num, res=16, num_classes=None, seed=0):
    from test_train_e2e import make_dataset_zip
    return make_dataset_zip(path, num=num, res=res, num_classes=num_classes, seed=seed)

@contextlib.contextmanager
def quiet_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ['OMP_NUM_THREADS'] = '1'
    try:
        yield
    finally:
        torch.set_num_threads(threads)

def train(args):
    import train as train_tool
    from torch_utils import training_stats
    # Statistics are differences of process-wide running sums (as in StyleGAN2-ADA), so their last bits depend
    # on what the process reported before: each run starts from empty sums.
    training_stats._counters.clear()
    training_stats._cumulative.clear()
    result = CliRunner().invoke(train_tool.main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f'train.py {" ".join(args)} failed:\n{result.output}') from result.exception
    return result

class StopAfter:
    """A stop request that turns on at its n-th read: where a signal would land, but at a fixed step."""
    def __init__(self, n):
        self.reads, self.n = 0, n
    @property
    def requested(self):
        self.reads += 1
        return self.reads >= self.n
    signal_name = 'SIGUSR1'
    def install(self):
        return self
    def uninstall(self):
        pass

#----------------------------------------------------------------------------
# The recorded items.

def record_runs(tmp):
    from tiny_clip import register_tiny_clip
    from training import preempt
    runs = dict()
    plain = make_zip(os.path.join(tmp, 'plain.zip'), num=6)
    labelled = make_zip(os.path.join(tmp, 'labelled.zip'), num=6, num_classes=3)
    wide = make_zip(os.path.join(tmp, 'wide.zip'), num=8, res=32, num_classes=3)
    clip = register_tiny_clip(tmp)
    paths = {tmp: '<TMP>', REPO: '<REPO>'}  # The clone's own path too: old_run is continued from it.
    auto = ['--kimg=0.016', '--gamma=1', '--target=0', '--dlr=0.02'] + TINY
    cases = dict(
        auto_ada=(['--data', plain] + auto, None),
        cifar_kd_lecam_diffaugment=(['--data', labelled, '--cfg=cifar', '--cond=1', '--kimg=0.012', '--kd=agg,corr',
            f'--kd-clip={clip}', '--kd-teacher=random', '--kd-div=0.5', '--lecam=0.3', '--diffaugment=color,translation,cutout']
            + TINY, None),
        biggan_lecam=(['--data', wide, '--cfg=biggan-cifar', '--cbase=2', '--batch=4', '--tick=0.016', '--kimg=0.032',
            '--metrics=none', '--workers=0', '--snap=1', '--device=cpu', '--lecam=0.3', '--lecam-decay=0.5'], None),
        two_processes=(['--data', plain, '--gpus=2', '--cfg=cifar', '--mbstd-group=1', '--kimg=0.012']
            + [a for a in TINY if not a.startswith('--mbstd')], None),
    )
    for name, (args, _) in cases.items():
        outdir = os.path.join(tmp, name)
        train(['--outdir', outdir] + args)
        runs[name] = run_record(outdir, paths)
    # Stopped at the 6th step by a stop request (mid-tick), then continued by the same command.
    outdir = os.path.join(tmp, 'stopped')
    args = ['--outdir', outdir, '--data', plain, '--resume=auto', '--tick=0.01'] + auto
    real = preempt.StopRequest
    preempt.StopRequest = lambda *a, **k: StopAfter(6)
    try:
        first = train(args)
    finally:
        preempt.StopRequest = real
    runs['stopped'] = run_record(outdir, paths)
    runs['stopped']['exit_code'] = first.exit_code
    train(args)
    runs['stopped_then_continued'] = run_record(outdir, paths)
    # A run written by the commit before the restructuring (tests/golden/old_run), continued by this code.
    outdir = os.path.join(tmp, 'old_continued')
    train(['--outdir', outdir, '--data', plain, f'--resume={OLD_RUN}', '--kimg=0.012'] + auto[1:])
    runs['old_run_continued'] = run_record(outdir, paths)
    return runs

def make_old_run():
    """Write tests/golden/old_run: 8 images of the auto_ada settings (options, log and final snapshot)."""
    import shutil
    with quiet_one_thread(), tempfile.TemporaryDirectory() as tmp:
        plain = make_zip(os.path.join(tmp, 'plain.zip'), num=6)
        train(['--outdir', tmp + '/runs', '--data', plain, '--kimg=0.008', '--gamma=1', '--target=0', '--dlr=0.02', '--snap=100'] + TINY)
        run_dir = sorted(glob.glob(os.path.join(tmp, 'runs', '0*')))[-1]
        shutil.rmtree(OLD_RUN, ignore_errors=True)
        os.makedirs(OLD_RUN)
        for name in ['training_options.json', 'network-snapshot-000000.008.pkl']:
            shutil.copy(os.path.join(run_dir, name), OLD_RUN)

DRY_RUNS = [
    [],
    ['--cfg=cifar'],
    ['--cfg=stylegan2', '--gamma=2', '--batch=16'],
    ['--cfg=paper256', '--mirror=1', '--aug=fixed', '--p=0.2', '--augpipe=bgcfnc'],
    ['--cfg=low_shot'],
    ['--cfg=low_shot', '--kd=agg,corr', '--kd-agg-weight=5', '--kd-dist=l1'],
    ['--cfg=cifar', '--kd=corr', '--kd-preset=authors'],
    ['--kd=agg', '--kd-agg-p=0.5', '--lecam=0.1', '--lecam-decay=0.9'],
    ['--cfg=biggan-cifar'],
    ['--cfg=biggan-cifar', '--lecam=0.3', '--kd=agg,corr', '--cbase=32'],
    ['--aug=noaug', '--diffaugment=translation', '--freezed=2', '--fp32=1'],
    ['--nhwc=1', '--cmax=256', '--map-depth=4', '--glr=0.001', '--dlr=0.003', '--tick=2', '--snap=5', '--kimg=12.5'],
    ['--subset=3', '--subset-seed=7', '--seed=3', '--desc=mine', '--keep=2', '--weights-only=1', '--allow-tf32=1'],
    ['--cond=1'],
    ['--gpus=2', '--batch=8', '--batch-gpu=2', '--device=cpu'],
    ['--target=0.7', '--metrics=none'],
    # Errors: one clear line, nothing written.
    ['--gamma=-1'],
    ['--cfg=biggan-cifar', '--gamma=1'],
    ['--aug=noaug', '--target=0.5'],
    ['--aug=fixed'],
    ['--kd-agg-weight=3'],
    ['--kd=corr', '--kd-agg-p=0.5'],
    ['--kd=bogus'],
    ['--lecam-decay=0.5'],
    ['--batch=3', '--gpus=2', '--device=cpu'],
    ['--resume-mode=continue'],
    ['--cfg=biggan-cifar', '--freezed=1'],
    ['--metrics=nonsense'],
]

def record_dry_runs(tmp):
    import train as train_tool
    data = make_zip(os.path.join(tmp, 'dry.zip'), num=6, num_classes=3)
    outdir = os.path.join(tmp, 'dry-runs')
    out = []
    for extra in DRY_RUNS:
        result = CliRunner().invoke(train_tool.main, ['--outdir', outdir, '--data', data, '-n'] + extra)
        out.append(dict(args=extra, exit_code=result.exit_code, output=_normalise(result.output, {tmp: '<TMP>'})))
    assert not os.path.exists(outdir) or os.listdir(outdir) == [], 'a dry run wrote something'
    return out

def record_help():
    import importlib
    import click
    out = dict()
    for tool in TOOLS:
        module = importlib.import_module(tool)
        for name in sorted(vars(module)):
            command = getattr(module, name)
            if isinstance(command, click.Command) and getattr(command.callback, '__module__', None) == tool:
                out[f'{tool}.{name}'] = CliRunner().invoke(command, ['--help'], prog_name=f'{tool}.py').output
    return out

def record():
    random.seed(0)
    with quiet_one_thread(), tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        return dict(environment=environment(), help=record_help(), dry_runs=record_dry_runs(tmp), runs=record_runs(tmp))

#----------------------------------------------------------------------------
# Comparison.

def differences(want, got, where='', exact=True, out=None):
    """Paths where got differs from want. exact=False (another torch or CPU) compares tensor sums to 1e-4 instead of hashes."""
    out = [] if out is None else out
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) == {'sha', 'sum'} and set(got) == {'sha', 'sum'} and not exact:
            if (want['sum'] is None) != (got['sum'] is None) or (want['sum'] is not None
                    and abs(want['sum'] - got['sum']) > 1e-4 * max(1.0, abs(want['sum']))) or want['sha'].split(':')[0] != got['sha'].split(':')[0]:
                out.append(f'{where}: {want} != {got}')
            return out
        for key in sorted(set(want) | set(got)):
            if key not in got or key not in want:
                out.append(f'{where}.{key}: {"missing" if key not in got else "new"}')
            else:
                differences(want[key], got[key], f'{where}.{key}', exact, out)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for idx, (a, b) in enumerate(zip(want, got)):
            differences(a, b, f'{where}[{idx}]', exact, out)
    elif isinstance(want, str) and isinstance(got, str) and want != got:
        at = next(i for i, (a, b) in enumerate(zip(want + '\0', got + '\1')) if a != b)  # Around the first difference.
        out.append(f'{where}: ...{want[max(at - 150, 0):at + 150]!r} != ...{got[max(at - 150, 0):at + 150]!r}')
    elif want != got:
        if exact or not isinstance(want, float) or not isinstance(got, float) or abs(want - got) > 1e-4 * max(1.0, abs(want)):
            out.append(f'{where}: {str(want)[:300]!r} != {str(got)[:300]!r}')
    return out

def main():
    if '--make-old-run' in sys.argv:
        make_old_run()
    got = record()
    if '--check' in sys.argv:
        want = json.load(open(GOLDEN))
        exact = want['environment'] == got['environment']
        diffs = differences({k: v for k, v in want.items() if k != 'environment'}, {k: v for k, v in got.items() if k != 'environment'},
            exact=exact)
        print('\n'.join(diffs[:50]) or f'equal ({"exactly" if exact else "to 1e-4: another environment"})')
        sys.exit(1 if diffs else 0)
    with open(GOLDEN, 'w') as f:
        json.dump(got, f, indent=1, sort_keys=True)
    print(f'wrote {GOLDEN}')

if __name__ == '__main__':
    main()
