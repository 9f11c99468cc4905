"""General helpers: EasyDict, construction of objects by dotted name, cached URL opening,
time formatting, stdout/stderr logging and atomic file writes."""

import contextlib
import hashlib
import importlib
import io
import os
import re
import socket
import sys
import tempfile
import time
import urllib.parse
import urllib.request

#----------------------------------------------------------------------------


class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

#----------------------------------------------------------------------------
# Logging of stdout/stderr to a file.


class Logger:
    """Tee everything written to stdout and stderr into a file (when file_name is given)."""

    def __init__(self, file_name=None, file_mode='a', should_flush=True):
        self.file = open(file_name, file_mode, encoding='utf-8') if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode()
        if len(text) == 0 or self.stdout is None:  # Empty writes are flushes; a closed Logger stays silent.
            return
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()

    def flush(self):
        # Handlers (e.g. logging's) may keep a closed Logger and flush it at exit.
        if self.stdout is None:
            return
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self):
        return False

    def close(self):
        """Flush, restore the original streams and close the file."""
        if self.stdout is None:
            return
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None
        self.stdout = None
        self.stderr = None

#----------------------------------------------------------------------------
# Small conversions used by the command-line tools.


def format_time(seconds):
    """Human-readable duration: '42s', '3m 05s', '1h 02m 03s', '2d 03h 04m'."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02d}s'
    if s < 24 * 60 * 60:
        return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'
    return f'{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m'


def parse_range(s):
    """Parse '0-3,7' (or a list/int) into a list of ints [0, 1, 2, 3, 7]."""
    if isinstance(s, int):
        return [s]
    if isinstance(s, (list, tuple)):
        return [int(v) for v in s]
    values = []
    for part in str(s).split(','):
        part = part.strip()
        if part == '':
            continue
        m = re.fullmatch(r'(-?\d+)\s*-\s*(-?\d+)', part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f'parse_range: range "{part}" in "{s}" is empty (end < start)')
            values.extend(range(lo, hi + 1))
        elif re.fullmatch(r'-?\d+', part):
            values.append(int(part))
        else:
            raise ValueError(f'parse_range: cannot parse "{part}" in "{s}"; expected e.g. "0-3,7"')
    return values


def parse_comma_list(s):
    """Parse 'a,b, c' into ['a', 'b', 'c']; None or '' gives []."""
    if s is None:
        return []
    if isinstance(s, (list, tuple)):
        return [str(v) for v in s]
    return [v.strip() for v in str(s).split(',') if v.strip() != '']

#----------------------------------------------------------------------------
# Atomic file writes.


def _umask():
    mask = os.umask(0)  # Reading the umask means setting it; put it back at once.
    os.umask(mask)
    return mask

@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Write to a temporary file in the same folder; move it to `path` only on success."""
    if 'w' not in mode:
        raise ValueError(f'atomic_write: mode must be a write mode ("w" or "wb"), got "{mode}"')
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets what open() would give it.
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
        raise

#----------------------------------------------------------------------------
# Finding and constructing objects by dotted name.


def get_module_from_obj_name(obj_name):
    """Split 'pkg.module.Obj.attr' into (imported module, 'Obj.attr'), trying the longest module first."""
    parts = obj_name.split('.')
    for i in range(len(parts), 0, -1):
        module_name = '.'.join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only swallow "this prefix is not a module"; an import error inside the module must surface.
            if e.name is None or not (module_name == e.name or module_name.startswith(e.name + '.')):
                raise
            continue
        try:
            get_obj_from_module(module, '.'.join(parts[i:]))
        except AttributeError:
            continue
        return module, '.'.join(parts[i:])
    raise ValueError(f'Cannot find object "{obj_name}": no importable module contains it')


def get_obj_from_module(module, obj_name):
    """Walk attribute path 'a.b.c' from a module; '' gives the module itself."""
    obj = module
    if obj_name == '':
        return obj
    for part in obj_name.split('.'):
        obj = getattr(obj, part)
    return obj


def get_obj_by_name(name):
    """Return the object named by a full dotted path, e.g. 'torch.nn.Linear'."""
    module, obj_name = get_module_from_obj_name(name)
    return get_obj_from_module(module, obj_name)


def call_func_by_name(*args, func_name=None, **kwargs):
    """Import and call the function (or class) named by a dotted path."""
    if func_name is None:
        raise ValueError('call_func_by_name: func_name is required')
    func_obj = get_obj_by_name(func_name)
    if not callable(func_obj):
        raise ValueError(f'call_func_by_name: "{func_name}" is not callable')
    return func_obj(*args, **kwargs)


def construct_class_by_name(*args, class_name=None, **kwargs):
    """Instantiate the class named by a dotted path with the given arguments."""
    if class_name is None:
        raise ValueError('construct_class_by_name: class_name is required')
    return call_func_by_name(*args, func_name=class_name, **kwargs)

#----------------------------------------------------------------------------
# Downloads with a local cache.

_dnnlib_cache_dir = None


def set_cache_dir(path):
    """Override the download cache folder for this process."""
    global _dnnlib_cache_dir
    _dnnlib_cache_dir = path


def make_cache_dir_path(*paths):
    """Path inside the cache folder: set_cache_dir(), then $DNNLIB_CACHE_DIR, then ~/.cache/dnnlib."""
    if _dnnlib_cache_dir is not None:
        return os.path.join(_dnnlib_cache_dir, *paths)
    if 'DNNLIB_CACHE_DIR' in os.environ:
        return os.path.join(os.environ['DNNLIB_CACHE_DIR'], *paths)
    home = os.environ.get('HOME') or os.environ.get('USERPROFILE')
    if home:
        return os.path.join(home, '.cache', 'dnnlib', *paths)
    return os.path.join(tempfile.gettempdir(), '.cache', 'dnnlib', *paths)


class OpenURLError(OSError):
    """A URL could not be fetched (offline, unreachable, bad response) and no cached copy exists."""


def is_url(obj, allow_file_urls=False):
    """True when obj looks like an http(s) URL (or file:// when allowed)."""
    if not isinstance(obj, str) or '://' not in obj:
        return False
    if allow_file_urls and obj.startswith('file://'):
        return True
    try:
        res = urllib.parse.urlparse(obj)
    except ValueError:
        return False
    return res.scheme in ('http', 'https') and bool(res.netloc)


def _file_url_to_path(url):
    res = urllib.parse.urlparse(url)
    path = urllib.request.url2pathname(res.path)
    if res.netloc not in ('', 'localhost'):
        path = '//' + res.netloc + path  # UNC share.
    return path


def cache_file_name(url):
    """Cache entry name: md5 of the URL, then a sanitized copy of the URL's file name."""
    url_md5 = hashlib.md5(url.encode('utf-8')).hexdigest()
    base = os.path.basename(urllib.parse.urlparse(url).path) or 'download'
    base = re.sub(r'[^0-9a-zA-Z_.-]', '_', base)
    return f'{url_md5}_{base}'


def _new_session():
    import requests  # Imported lazily: only downloads need it.
    return requests.Session()


def _check_host_resolves(url):
    """Fail at once, without retries, when the host name cannot be resolved (offline): retrying cannot help.
    Behind a proxy the proxy resolves names, so nothing is checked here."""
    if any(os.environ.get(k) for k in ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy')):
        return
    parsed = urllib.parse.urlparse(url)
    try:
        socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == 'https' else 80))
    except socket.gaierror as e:
        raise OSError(f'cannot resolve host {parsed.hostname} ({e})') from None

def _download(url, num_attempts, verbose):
    """Fetch url into memory, retrying transient failures; re-raises the last error."""
    import requests  # Imported lazily, as in _new_session: only downloads need it.
    last_error = None
    for attempt in range(num_attempts):
        try:
            with _new_session() as session:
                with session.get(url, timeout=60) as res:
                    res.raise_for_status()
                    if len(res.content) == 0:
                        raise IOError('server returned an empty response')
                    return res.content
        except (requests.RequestException, IOError) as e:
            last_error = e
            if verbose:
                print(f'open_url: attempt {attempt + 1}/{num_attempts} for {url} failed: {e}', file=sys.stderr, flush=True)
            response = getattr(e, 'response', None)
            if response is not None and 400 <= response.status_code < 500:
                break  # Client errors (404, 403) do not go away on retry.
            if attempt + 1 < num_attempts:
                time.sleep(min(2 ** attempt, 10) * 0.1)
    raise last_error


def open_url(url, cache_dir=None, num_attempts=10, verbose=True, return_filename=False, cache=True):
    """Open a local path, a file:// URL or an http(s) URL (downloaded once into a cache).

    Returns a binary file object, or the local file path when return_filename=True
    (which needs cache=True for http URLs).
    """
    if not isinstance(url, str):
        url = os.fspath(url)
    if num_attempts < 1:
        raise ValueError(f'open_url: num_attempts must be >= 1, got {num_attempts}')

    # Local paths and file:// URLs: no cache.
    if not re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*://', url):
        if not os.path.isfile(url):
            raise OpenURLError(f'open_url: local file "{url}" does not exist')
        return url if return_filename else open(url, 'rb')
    if url.startswith('file://'):
        path = _file_url_to_path(url)
        if not os.path.isfile(path):
            raise OpenURLError(f'open_url: file URL "{url}" points to "{path}", which does not exist')
        return path if return_filename else open(path, 'rb')
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ('http', 'https'):
        raise ValueError(f'open_url: unsupported URL scheme "{scheme}" in "{url}"; use http(s)://, file:// or a local path')
    if return_filename and not cache:
        raise ValueError('open_url: return_filename=True needs cache=True for http(s) URLs')

    if cache_dir is None:
        cache_dir = make_cache_dir_path('downloads')
    cache_path = os.path.join(cache_dir, cache_file_name(url))
    if cache and os.path.isfile(cache_path):
        return cache_path if return_filename else open(cache_path, 'rb')

    try:
        _check_host_resolves(url)
        data = _download(url, num_attempts=num_attempts, verbose=verbose)
    except Exception as e:
        raise OpenURLError(
            f'Could not download "{url}" ({type(e).__name__}: {e}). '
            f'It would be cached at "{cache_path}". If you are offline, fetch the file elsewhere and '
            f'either place it at that path, or pass its local path (or a file:// URL) instead of the URL.'
        ) from e

    if cache:
        os.makedirs(cache_dir, exist_ok=True)
        with atomic_write(cache_path, 'wb') as f:
            f.write(data)
        if return_filename:
            return cache_path
    return io.BytesIO(data)

#----------------------------------------------------------------------------
