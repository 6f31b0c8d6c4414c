"""What the comparison drivers (compare.py, peers.py, models.py) share: the environment PyTorch runs
at its best in, one configuration per process with a timeout, and the table.

Every configuration runs in a fresh process (bench_compare for us, torch_worker.py for PyTorch,
Captum and Zennit) that prints one line of key=value pairs; a failure or a timeout becomes an
`error` entry that the table prints in place of the figure, and the run goes on.
"""
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = '/usr/bin/python3'  # Debian's, with python3-torch
LIBDIR = '/usr/lib/x86_64-linux-gnu'
TCMALLOC = os.path.join(LIBDIR, 'libtcmalloc_minimal.so.4')
OPENBLAS_OMP = os.path.join(LIBDIR, 'openblas-openmp')


def has_avx512():
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((l for l in f if l.startswith('flags')), '').split()
        return all(f in flags for f in ('avx512f', 'avx512bw', 'avx512dq', 'avx512vl'))
    except OSError:
        return False


def torch_env(captum=None, zennit=None):
    """The environment of a PyTorch process, and a list of notes saying what is set or missing.

    As ../shared/PERFORMANCE-NOTES.md says PyTorch runs best here: tcmalloc preloaded, the OpenMP
    build of OpenBLAS (one thread pool with PyTorch's own OpenMP), and OpenBLAS's AVX-512 kernels,
    which our library picks for itself too (src/core/blas.c). captum/zennit: source folders to put
    on PYTHONPATH."""
    env, notes = dict(os.environ), []
    if os.path.exists(TCMALLOC):
        env['LD_PRELOAD'] = (TCMALLOC + ' ' + env.get('LD_PRELOAD', '')).strip()
        notes.append('LD_PRELOAD=' + TCMALLOC)
    else:
        notes.append('no tcmalloc (apt-get install libtcmalloc-minimal4): PyTorch runs on glibc malloc')
    if os.path.isdir(OPENBLAS_OMP):
        env['LD_LIBRARY_PATH'] = ':'.join(p for p in (OPENBLAS_OMP, env.get('LD_LIBRARY_PATH')) if p)
        notes.append('LD_LIBRARY_PATH=' + OPENBLAS_OMP)
    else:
        notes.append('no OpenMP OpenBLAS (apt-get install libopenblas0-openmp)')
    if env.get('OPENBLAS_CORETYPE', 'Haswell') == 'Haswell' and has_avx512():  # as src/core/blas.c does
        env['OPENBLAS_CORETYPE'] = 'SkylakeX'
    if 'OPENBLAS_CORETYPE' in env:
        notes.append('OPENBLAS_CORETYPE=' + env['OPENBLAS_CORETYPE'])
    paths = [p for p in (captum, zennit) if p]
    if paths:
        env['PYTHONPATH'] = ':'.join(paths + [env['PYTHONPATH']] if env.get('PYTHONPATH') else paths)
    return env, notes


def peer_paths():
    """The Captum and Zennit source folders from CAPTUM_SRC / ZENNIT_SRC (a repository root or the
    folder holding the package), or None for each that is not there."""
    def find(var, pkg):
        root = os.environ.get(var)
        if not root:
            return None
        for d in (root, os.path.join(root, 'src')):
            if os.path.isfile(os.path.join(d, pkg, '__init__.py')):
                return os.path.abspath(d)
        print('%s=%s holds no %s/ package; ignored' % (var, root, pkg), file=sys.stderr)
        return None
    return find('CAPTUM_SRC', 'captum'), find('ZENNIT_SRC', 'zennit')


def parse(stdout):
    """The last key=value line of a worker's output as a dict (numbers as floats)."""
    lines = [l for l in stdout.splitlines() if '=' in l]
    if not lines:
        return {}
    line = lines[-1]
    if line.startswith('error='):
        return {'error': line[len('error='):]}
    out = {}
    for tok in line.split(' '):
        if '=' in tok:
            k, v = tok.split('=', 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    if 'blas=' in line:  # the last field may hold spaces
        out['blas'] = line.split('blas=', 1)[1]
    return out


# Seconds to wait before each measured process: a process started as the previous one (a PyTorch
# worker of 300 MB) exits ran 5-25% slower on this 2-core VM (the kernel reclaiming its memory).
SETTLE = 1.0


def run(cmd, env=None, timeout=1800, verbose=False):
    """Runs one configuration; returns its key=value dict, with `error` when it failed."""
    time.sleep(SETTLE)
    if verbose:
        print('+ ' + ' '.join(shlex.quote(c) for c in cmd), file=sys.stderr)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': 'timeout after %d s' % timeout}
    except OSError as e:
        return {'error': str(e)}
    r = parse(p.stdout)
    if p.returncode != 0 and 'error' not in r:
        tail = [l for l in p.stderr.strip().splitlines() if l.strip()]
        r = {'error': 'exit %d: %s' % (p.returncode, tail[-1] if tail else 'no message')}
    elif not r:
        r = {'error': 'no result printed'}
    r['wall_s'] = time.time() - t0
    return r


def run_ours(build, model_dir, model, method, batch, reps, warmup=2, params=(), target=0, timeout=1800,
             verbose=False):
    cmd = [os.path.join(build, 'bench', 'bench_compare'), os.path.join(model_dir, model + '.onnx'), method,
           '--batch', str(batch), '--reps', str(reps), '--warmup', str(warmup), '--target', str(target)]
    for p in params:
        cmd += ['--param', p]
    return run(cmd, timeout=timeout, verbose=verbose)


def run_torch(model_dir, model, method, batch, reps, warmup=2, impl='plain', env=None, timeout=1800,
              extra=(), verbose=False):
    if env is None:
        env, _ = torch_env()
    cmd = [PYTHON, os.path.join(HERE, 'torch_worker.py'), model_dir, model, method, '--batch', str(batch),
           '--reps', str(reps), '--warmup', str(warmup), '--impl', impl] + list(extra)
    return run(cmd, env=env, timeout=timeout, verbose=verbose)


def alternate(ours, theirs, rounds):
    """Calls ours() and theirs() in turn, `rounds` times each, so that both sides meet the same phases
    of a noisy machine (this VM's speed moves by a third within minutes); each side's result is its
    run of median time (the lower one of an even count), or its first error."""
    runs = [[], []]
    for _ in range(max(rounds, 1)):
        runs[0].append(ours())
        runs[1].append(theirs())
    out = []
    for rs in runs:
        bad = [r for r in rs if 'error' in r]
        rs = sorted(rs, key=lambda r: r.get('ms_per_img', float('inf')))
        out.append(bad[0] if bad else rs[(len(rs) - 1) // 2])
    return out


def export(model_dir, models, timeout=1800):
    """Exports the missing models (bench/models.py), each in a process of its own; returns
    {name: error} for those that failed."""
    failed = {}
    for name in models:
        if all(os.path.exists(os.path.join(model_dir, name + ext)) for ext in ('.onnx', '.pt')):
            continue
        print('exporting %s into %s ...' % (name, model_dir))
        sys.stdout.flush()
        try:
            p = subprocess.run([PYTHON, os.path.join(HERE, 'models.py'), model_dir, '--export-only', '--models', name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
            if p.returncode != 0:
                lines = [l for l in p.stdout.strip().splitlines() if l.strip()]
                failed[name] = 'export failed: ' + (lines[-1] if lines else 'exit %d' % p.returncode)
        except subprocess.TimeoutExpired:
            failed[name] = 'export timed out after %d s' % timeout
    return failed


def loadavg():
    try:
        return '%.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        return 'unknown'


def fmt_ms(r):
    if 'error' in r:
        return None
    ms = r.get('ms_per_img')
    return '-' if ms is None else '%.3f' % ms if ms < 10 else '%.1f' % ms if ms < 1000 else '%.0f' % ms


def fmt_mb(r, key):
    v = r.get(key)
    return '-' if not isinstance(v, float) else '%.1f' % v if v < 10 else '%.0f' % v


def fmt_pair(ours, theirs, key):
    """'ours/theirs' of a memory figure, in MB."""
    return '%s/%s' % (fmt_mb(ours, key), fmt_mb(theirs, key))


def ratio(ours, theirs):
    """How many times faster we are: their time over ours."""
    a, b = ours.get('ms_per_img'), theirs.get('ms_per_img')
    if not isinstance(a, float) or not isinstance(b, float) or a <= 0:
        return '-'
    return '%.2fx' % (b / a)


class Table:
    """Rows printed as they come (a long run shows progress), columns padded to fixed widths; an
    error goes after the row, in full, so it cannot break the alignment."""

    def __init__(self, columns):
        self.columns = columns  # (title, width, align '<' or '>')
        print('  '.join('%*s' % (w if a == '>' else -w, t) for t, w, a in columns))
        sys.stdout.flush()

    def row(self, cells, errors=()):
        print('  '.join('%*s' % (w if a == '>' else -w, c) for (_, w, a), c in zip(self.columns, cells)))
        for who, e in errors:
            print('    %s: %s' % (who, e))
        sys.stdout.flush()
