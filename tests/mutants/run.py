"""The mutation corpus: apply each planted bug (tests/mutants/*.patch) alone to a scratch copy of the
working tree, run only the tests its header names, and report it caught (the tests fail) or survived.

    python tests/mutants/run.py                 # every mutant; exit status 1 when any survived or broke
    python tests/mutants/run.py loop- kd-       # those whose file name contains one of the words
    python tests/mutants/run.py --jobs 1 ...    # one at a time (default 2, in two scratch copies)

A patch is a unified diff (as `git diff` writes it) below header lines of the form
    # test: tests/test_x.py::test_y tests/test_z.py     (one or more pytest node ids; required)
    # why: what the slip is and why a reviewer would fear it
`make mutants` runs this; it is not part of `make test`.
"""

import concurrent.futures
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

def read_header(path):
    tests, why = [], ''
    for line in open(path):
        if line.startswith('# test:'):
            tests += line[len('# test:'):].split()
        elif line.startswith('# why:'):
            why = line[len('# why:'):].strip()
        elif not line.startswith('#'):
            break
    return tests, why

def scratch_copy(dest):
    """The tracked and untracked (not ignored) files of the working tree, as they are now."""
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
        capture_output=True, check=True).stdout.decode().split('\0')
    for name in files:
        src = os.path.join(REPO, name)
        if name and os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, name))

def run_one(patch, copy, python, env):
    tests, _why = read_header(patch)
    if not tests:
        return 'broken', 'no "# test:" line'
    apply = subprocess.run(['git', 'apply', '--unidiff-zero', patch], cwd=copy, capture_output=True, text=True)
    if apply.returncode != 0:
        return 'broken', 'does not apply: ' + apply.stderr.strip().splitlines()[0]
    try:
        result = subprocess.run([python, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider', '-m', 'not gpu'] + tests,
            cwd=copy, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return 'caught', 'timed out (600 s)'
    finally:
        subprocess.run(['git', 'apply', '-R', '--unidiff-zero', patch], cwd=copy, check=True, capture_output=True)
    last = (result.stdout.strip().splitlines() or [''])[-1]
    if result.returncode == 1:
        return 'caught', last
    if result.returncode == 0:
        return 'survived', last
    return 'broken', f'pytest exit {result.returncode}: {last}'  # Collection errors, no tests selected, ...

def main(args):
    jobs = 2  # Two scratch copies, one mutant each at a time: the 2 cores this project's machines have.
    if args[:1] == ['--jobs']:
        jobs, args = int(args[1]), args[2:]
    patches = sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith('.patch'))
    if args:
        patches = [p for p in patches if any(w in os.path.basename(p) for w in args)]
    python = os.path.join(REPO, '.venv', 'bin', 'python')
    python = python if os.path.exists(python) else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1')
    counts = dict(caught=0, survived=0, broken=0)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix='kd-mutants-') as root:
        copies = queue.Queue()
        for idx in range(jobs):
            copy = os.path.join(root, str(idx))
            scratch_copy(copy)
            copies.put(copy)
        def one(patch):
            copy = copies.get()
            try:
                t0 = time.time()
                return (patch, *run_one(patch, copy, python, env), time.time() - t0)
            finally:
                copies.put(copy)
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for patch, outcome, detail, seconds in pool.map(one, patches):
                counts[outcome] += 1
                print(f'{outcome:8s} {os.path.basename(patch):55s} {seconds:5.1f}s  {detail}', flush=True)
    print(f'{counts["caught"]} caught, {counts["survived"]} survived, {counts["broken"]} broken, of {len(patches)} '
        f'mutants in {time.time() - start:.0f} s')
    return 0 if counts['survived'] == 0 and counts['broken'] == 0 else 1

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
