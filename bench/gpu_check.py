"""GPU acceptance run (`make gpu-check`): build the plugins, run the gpu-marked tests, then measure
training and feature extraction; print one JSON line per figure and write them as a markdown table.

    make gpu-check                                  # the project's .venv
    make gpu-check PYTHON=python3 WHEELS=~/wheels   # an existing CUDA environment, offline
    python bench/gpu_check.py --md=gpu-check.md     # directly

Without a visible CUDA device (or with packages missing) it says so and exits with status 2; it
imports only the standard library until it has checked the interpreter. Every step runs in its own
process with a time limit, and the whole run stops starting new steps after --budget seconds
(8 minutes by default), so one slow or failing step cannot hide the others' figures.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_TORCH = (2, 11)
NEEDED_MODULES = ('torch', 'numpy', 'scipy', 'click', 'PIL', 'psutil', 'ninja', 'open_clip', 'pytest')

# (name, train.py preset, resolution, batch): the three configurations users train on GPUs.
TRAIN_CONFIGS = [
    ('cifar', 'cifar', 32, 64),
    ('low_shot-256', 'low_shot', 256, 8),
    ('biggan-cifar', 'biggan-cifar', 32, 50),
]

#----------------------------------------------------------------------------

def environment_problem():
    """A one-line reason this interpreter cannot run the check, or None."""
    try:
        import torch
    except ImportError:
        return f'{sys.executable} has no torch: use an environment with a CUDA build of torch {MIN_TORCH[0]}.{MIN_TORCH[1]} or newer'
    missing = []
    for name in NEEDED_MODULES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        return (f'missing Python packages: {", ".join(missing)}; install them, offline from a folder of wheels with '
                f'`make gpu-check PYTHON={sys.executable} WHEELS=DIR` (see docs/gpu.md)')
    version = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2])
    if version < MIN_TORCH:
        return f'torch {torch.__version__} is too old: the code needs torch {MIN_TORCH[0]}.{MIN_TORCH[1]} or newer'
    if torch.version.cuda is None:
        return f'torch {torch.__version__} is a CPU-only build; install a CUDA build of torch'
    if not torch.cuda.is_available():
        return f'no CUDA device is visible (torch {torch.__version__}, CUDA {torch.version.cuda}); run this on a GPU machine'
    return None

TORCH_STACK = ('torch', 'torchvision', 'torchaudio', 'triton')  # Never replaced: the environment's CUDA build stays.

def _dist_name(wheel):
    # A wheel file name starts with the distribution name, '-' separated, with '_' for '-' and '.'.
    return os.path.basename(wheel).split('-')[0].lower().replace('_', '-')

def install_missing_wheels(folder):
    """pip-install, offline and without dependency resolution, each wheel in `folder` whose
    distribution is not installed yet; the torch stack and NVIDIA's libraries are left alone."""
    from importlib import metadata
    wheels = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.whl')) if os.path.isdir(folder) else []
    if not wheels:
        print(f'gpu-check: no wheels in {folder!r}', file=sys.stderr)
        sys.exit(2)
    todo = []
    for wheel in wheels:
        name = _dist_name(wheel)
        if name in TORCH_STACK or name.startswith(('nvidia-', 'cuda-')):
            continue
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            todo.append(wheel)
    if todo:
        print(f'gpu-check: installing {len(todo)} wheels from {folder}: {", ".join(_dist_name(w) for w in todo)}', file=sys.stderr)
        subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', *todo], check=True)

def plan():
    """The steps, in order: (name, argv, time limit in seconds)."""
    py = sys.executable
    steps = [('build', [py, '-m', 'torch_utils.ops', '--build'], 240),
             ('tests', [py, '-m', 'pytest', '-q', '-m', 'gpu', '-p', 'no:cacheprovider', 'tests'], 180)]
    for name, cfg, res, batch in TRAIN_CONFIGS:
        common = [py, 'bench/train_speed.py', f'--cfg={cfg}', f'--res={res}', f'--batch={batch}', '--device=cuda', '--steps=2']
        steps.append((f'train {name}', common, 120))
        steps.append((f'train {name} kd', common + ['--kd=agg,corr'], 150))
    steps.append(('train cifar ref-ops', [py, 'bench/train_speed.py', '--cfg=cifar', '--res=32', '--batch=64', '--device=cuda',
        '--steps=2', '--impl=ref'], 120))
    steps.append(('features', [py, 'bench/gpu_check.py', '--inception-only'], 90))
    return steps

#----------------------------------------------------------------------------

def _json_lines(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('{') and line.endswith('}'):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows

def _pytest_summary(text):
    """'N passed, M skipped' (pytest's closing line) or the last line of the output."""
    lines = [line.strip(' =') for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ('passed', 'failed', 'error', 'no tests ran')):
            return line
    return lines[-1] if lines else '(no output)'

def figures(results):
    """The figure rows from the steps' results: dicts with check, what, value, unit."""
    rows = []
    speed = dict()
    for name, result in results:
        if result['status'] != 'ok':
            rows.append(dict(check=name, what='status', value=result['status'], unit=result.get('detail', '')))
            continue
        if name == 'build':
            rows.append(dict(check='build', what='both plugins', value=result['seconds'], unit='s'))
        elif name == 'tests':
            rows.append(dict(check='tests', what='pytest -m gpu', value=result['summary'], unit=''))
        elif name.startswith('train'):
            data = result['json'][-1]
            speed[name] = data
            rows.append(dict(check=name, what='sec/kimg', value=data['sec_per_kimg'], unit='s'))
            rows.append(dict(check=name, what='peak GPU memory', value=data.get('peak_gpu_mem_gb'), unit='GiB'))
            for phase, ms in sorted(data.get('phase_ms', {}).items()):
                rows.append(dict(check=name, what=f'{phase} time', value=ms, unit='ms'))
        elif name == 'features':
            data = result['json'][-1]
            rows.append(dict(check='features', what=f'{data["detector"]} feature extraction, batch {data["batch"]}',
                value=data['images_per_s'], unit='images/s'))
    for name, _cfg, _res, _batch in TRAIN_CONFIGS:
        base, kd = speed.get(f'train {name}'), speed.get(f'train {name} kd')
        if base and kd:
            rows.append(dict(check=f'kd overhead {name}', what='sec/kimg with KD / without', value=round(kd['sec_per_kimg'] / base['sec_per_kimg'], 3), unit='x'))
    cuda, ref = speed.get('train cifar'), speed.get('train cifar ref-ops')
    if cuda and ref:
        rows.append(dict(check='custom kernels cifar', what='sec/kimg custom kernels / reference ops', value=round(cuda['sec_per_kimg'] / ref['sec_per_kimg'], 3), unit='x'))
    return rows

def markdown(rows, device_name, torch_version):
    lines = [f'GPU check on {device_name}, torch {torch_version} (`make gpu-check`, {time.strftime("%Y-%m-%d")}):', '',
             '| check | figure | value | unit |', '|---|---|---|---|']
    lines += [f'| {r["check"]} | {r["what"]} | {r["value"]} | {r["unit"]} |' for r in rows]
    return '\n'.join(lines) + '\n'

def run_step(name, argv, limit, env):
    start = time.time()
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return dict(status='timeout', detail=f'over {limit} s', seconds=round(time.time() - start, 1))
    result = dict(seconds=round(time.time() - start, 1), json=_json_lines(proc.stdout))
    if name == 'tests':
        result['summary'] = _pytest_summary(proc.stdout)
    ok = proc.returncode == 0 and (name in ('build', 'tests') or result['json'])
    result['status'] = 'ok' if ok else 'failed'
    if not ok:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        result['detail'] = f'status {proc.returncode}'
        print(f'gpu-check: step "{name}" failed (status {proc.returncode}); its last lines:', file=sys.stderr)
        print('\n'.join('    ' + line for line in tail), file=sys.stderr)
    return result

#----------------------------------------------------------------------------

def _cached_inception():
    """Path of NVIDIA's Inception detector in $KD_DETECTOR_DIR or the download cache, or None (never downloads)."""
    import dnnlib
    from metrics import metric_utils
    name = metric_utils.detector_file_name(metric_utils.INCEPTION_URL)
    folder = os.environ.get(metric_utils.DETECTOR_DIR_ENV)
    candidates = [os.path.join(folder, name)] if folder else []
    candidates.append(os.path.join(dnnlib.make_cache_dir_path('downloads'), dnnlib.util.cache_file_name(metric_utils.INCEPTION_URL)))
    return next((path for path in candidates if os.path.isfile(path)), None)

def inception_features(batch=100, batches=10, device='cuda'):
    """Images/s of Inception-v3-shaped feature extraction at 299x299 in fp32: NVIDIA's detector when
    it is cached or in $KD_DETECTOR_DIR, else torchvision's architecture with random weights."""
    import torch
    sys.path.insert(0, REPO)
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda *_: None)
    path = _cached_inception()
    if path is not None:
        model = torch.jit.load(path, map_location=device).eval()
        name, run = 'inception-2015-12-05', lambda x: model(x, return_features=True)
        images = torch.randint(0, 256, [batch, 3, 299, 299], dtype=torch.uint8, device=device)
    else:
        import torchvision
        model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).to(device).eval()
        model.fc = torch.nn.Identity()  # 2048-d pool features, like the detector's.
        name, run = 'Inception-v3 shape (random weights)', model
        images = torch.randn([batch, 3, 299, 299], device=device)
    with torch.no_grad():
        for _ in range(3):
            run(images)
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            features = run(images)
        sync(device)
    assert features.shape == (batch, 2048)
    return dict(detector=name, batch=batch, images_per_s=round(batch * batches / (time.perf_counter() - start), 1))

def main(argv=None):
    parser = argparse.ArgumentParser(description='GPU acceptance run: plugins, gpu tests, speed and memory figures.')
    parser.add_argument('--md', dest='md_path', default='gpu-check.md', help='where to write the markdown table [gpu-check.md]')
    parser.add_argument('--budget', type=float, default=480, help='seconds after which no new step starts [480]')
    parser.add_argument('--plan', dest='show_plan', action='store_true', help='print the steps and exit')
    parser.add_argument('--inception-only', action='store_true', help='only the feature-extraction figure (one JSON line)')
    parser.add_argument('--install-wheels', metavar='DIR', help='first install the packages this interpreter lacks from the wheels in DIR (offline)')
    args = parser.parse_args(argv)
    if args.install_wheels:
        install_missing_wheels(args.install_wheels)
    md_path, budget, show_plan, inception_only = args.md_path, args.budget, args.show_plan, args.inception_only
    if show_plan:
        for name, argv, limit in plan():
            print(f'{name:24s} {limit:4d} s  {" ".join(argv[1:])}')
        return
    problem = environment_problem()
    if problem is not None:
        print(f'gpu-check: {problem}. Nothing was run.', file=sys.stderr)
        sys.exit(2)
    if inception_only:
        print(json.dumps(dict(check='features', **inception_features())))
        return

    import torch
    device_name = torch.cuda.get_device_name(0)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    results = []
    for name, argv, limit in plan():
        if time.time() - start > budget:
            results.append((name, dict(status='skipped', detail=f'budget of {budget:g} s spent')))
            continue
        print(f'gpu-check: {name}...', file=sys.stderr, flush=True)
        results.append((name, run_step(name, argv, min(limit, max(budget - (time.time() - start), 30)), env)))
    rows = figures(results)
    for row in rows:
        print(json.dumps(dict(row, device=device_name)))
    with open(md_path, 'w') as f:
        f.write(markdown(rows, device_name, torch.__version__))
    print(f'gpu-check: {len(rows)} figures in {time.time() - start:.0f} s; table written to {md_path}', file=sys.stderr)
    if any(result['status'] != 'ok' for _, result in results):
        sys.exit(1)

if __name__ == '__main__':
    main()
