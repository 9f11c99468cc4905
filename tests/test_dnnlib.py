"""Tests for dnnlib: EasyDict, construction by name, open_url and its cache, atomic writes, Logger."""

import hashlib
import http.server
import os
import sys
import threading

import pytest
import requests

import dnnlib
from dnnlib import util

#----------------------------------------------------------------------------


def test_easydict_attribute_and_item_access():
    d = dnnlib.EasyDict(a=1, b=dnnlib.EasyDict(c=2))
    assert dnnlib.EasyDict is util.EasyDict
    assert d.a == 1 and d['a'] == 1 and d.b.c == 2
    d.x = 5
    assert d['x'] == 5
    del d.a
    assert 'a' not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    with pytest.raises(AttributeError):
        del d.missing


def test_construct_and_call_by_name():
    obj = util.construct_class_by_name(3, 4, class_name='fractions.Fraction')
    assert (obj.numerator, obj.denominator) == (3, 4)
    assert util.call_func_by_name(16, func_name='math.sqrt') == 4.0
    assert util.get_obj_by_name('os.path.join') is os.path.join
    assert util.get_obj_by_name('dnnlib.util.EasyDict') is dnnlib.EasyDict
    with pytest.raises(ValueError, match='no_such_thing'):
        util.get_obj_by_name('os.path.no_such_thing')
    with pytest.raises(ValueError, match='class_name'):
        util.construct_class_by_name()
    with pytest.raises(ValueError, match='not callable'):
        util.call_func_by_name(func_name='math.pi')


def test_construct_reraises_errors_inside_modules(tmp_path, monkeypatch):
    # A module that exists but fails to import must not be reported as "not found".
    (tmp_path / 'broken_mod_for_test.py').write_text('import module_that_does_not_exist_xyz\nclass A: pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match='module_that_does_not_exist_xyz'):
        util.construct_class_by_name(class_name='broken_mod_for_test.A')


def test_parse_helpers_and_format_time():
    assert util.parse_range('0-3,7') == [0, 1, 2, 3, 7]
    assert util.parse_range('5') == [5]
    assert util.parse_range(4) == [4]
    assert util.parse_range([1, 2]) == [1, 2]
    with pytest.raises(ValueError, match='x'):
        util.parse_range('1,x')
    with pytest.raises(ValueError, match='empty'):
        util.parse_range('5-2')
    assert util.parse_comma_list('a, b,,c') == ['a', 'b', 'c']
    assert util.parse_comma_list(None) == []
    assert util.format_time(42) == '42s'
    assert util.format_time(3 * 60 + 5) == '3m 05s'
    assert util.format_time(3600 + 2 * 60 + 3) == '1h 02m 03s'
    assert util.format_time(2 * 86400 + 3 * 3600 + 4 * 60) == '2d 03h 04m'


def test_is_url():
    assert util.is_url('https://example.com/a.pkl')
    assert util.is_url('http://127.0.0.1:8000/a')
    assert not util.is_url('/tmp/a.pkl')
    assert not util.is_url('file:///tmp/a.pkl')
    assert util.is_url('file:///tmp/a.pkl', allow_file_urls=True)

#----------------------------------------------------------------------------


def test_atomic_write(tmp_path):
    path = tmp_path / 'out.bin'
    with util.atomic_write(path) as f:
        f.write(b'hello')
    assert path.read_bytes() == b'hello'

    with pytest.raises(RuntimeError):
        with util.atomic_write(path) as f:
            f.write(b'half-written')
            raise RuntimeError('boom')
    assert path.read_bytes() == b'hello'  # Old content intact.
    assert sorted(os.listdir(tmp_path)) == ['out.bin']  # No temp file left.

    new_path = tmp_path / 'new.txt'
    with pytest.raises(RuntimeError):
        with util.atomic_write(new_path, 'w') as f:
            f.write('x')
            raise RuntimeError('boom')
    assert not new_path.exists()
    with pytest.raises(ValueError, match='mode'):
        with util.atomic_write(new_path, 'rb'):
            pass


def test_logger_tees_stdout_and_stderr(tmp_path, capsys):
    log_path = tmp_path / 'log.txt'
    orig_stdout, orig_stderr = sys.stdout, sys.stderr
    with util.Logger(file_name=str(log_path), file_mode='w'):
        print('to stdout')
        print('to stderr', file=sys.stderr)
    assert sys.stdout is orig_stdout and sys.stderr is orig_stderr
    assert log_path.read_text() == 'to stdout\nto stderr\n'
    assert 'to stdout' in capsys.readouterr().out

#----------------------------------------------------------------------------


def test_make_cache_dir_path(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))
    assert dnnlib.make_cache_dir_path('downloads', 'x') == os.path.join(str(tmp_path), 'downloads', 'x')
    monkeypatch.delenv('DNNLIB_CACHE_DIR')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert util.make_cache_dir_path('a') == os.path.join(str(tmp_path / 'home'), '.cache', 'dnnlib', 'a')


def test_open_url_local_path_and_file_url(tmp_path):
    path = tmp_path / 'data with space.bin'
    path.write_bytes(b'\x00\x01payload')
    with util.open_url(str(path)) as f:
        assert f.read() == b'\x00\x01payload'
    with util.open_url(path.as_uri()) as f:  # file:// URL, percent-encoded space.
        assert f.read() == b'\x00\x01payload'
    assert util.open_url(path.as_uri(), return_filename=True) == str(path)
    with pytest.raises(OSError, match='does not exist'):
        util.open_url(str(tmp_path / 'missing.bin'))
    with pytest.raises(ValueError, match='ftp'):
        util.open_url('ftp://example.com/x.bin')


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):
        _CountingHandler.hits.append(self.path)
        body = b'network-bytes:' + self.path.encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_open_url_http_download_is_cached(tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _CountingHandler.hits.clear()
        url = f'http://127.0.0.1:{server.server_address[1]}/models/net.pkl'
        with util.open_url(url, cache_dir=str(tmp_path), verbose=False) as f:
            assert f.read() == b'network-bytes:/models/net.pkl'
        with util.open_url(url, cache_dir=str(tmp_path), verbose=False) as f:
            assert f.read() == b'network-bytes:/models/net.pkl'
        assert _CountingHandler.hits == ['/models/net.pkl']  # Second call came from the cache.

        expected_name = hashlib.md5(url.encode()).hexdigest() + '_net.pkl'
        assert os.listdir(tmp_path) == [expected_name]
        assert util.open_url(url, cache_dir=str(tmp_path), return_filename=True) == str(tmp_path / expected_name)

        with util.open_url(url, cache_dir=str(tmp_path), cache=False, verbose=False) as f:
            assert f.read() == b'network-bytes:/models/net.pkl'
        assert len(_CountingHandler.hits) == 2  # cache=False always downloads.
    finally:
        server.shutdown()
        server.server_close()


class _FakeResponse:
    def __init__(self, content):
        self.content = content

    def raise_for_status(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass


class _FlakySession:
    """Session whose first `failures` GETs raise ConnectionError."""
    calls = 0
    failures = 0

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def get(self, url, timeout=None):
        _FlakySession.calls += 1
        if _FlakySession.calls <= _FlakySession.failures:
            raise requests.ConnectionError('Failed to resolve host (offline)')
        return _FakeResponse(b'ok')


def test_open_url_offline_error_names_url_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setattr(util, '_check_host_resolves', lambda url: None)  # The host resolves; the server fails.
    monkeypatch.setattr(util, '_new_session', _FlakySession)
    monkeypatch.setattr(_FlakySession, 'calls', 0)
    monkeypatch.setattr(_FlakySession, 'failures', 10**6)
    url = 'https://example.invalid/weights/inception.pt'
    with pytest.raises(util.OpenURLError) as info:
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=2, verbose=False)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    cache_path = os.path.join(str(tmp_path), hashlib.md5(url.encode()).hexdigest() + '_inception.pt')
    assert url in message and cache_path in message and 'local path' in message and 'file://' in message
    assert _FlakySession.calls == 2
    assert os.listdir(tmp_path) == []  # Nothing half-written.


def test_open_url_retries_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(util, '_check_host_resolves', lambda url: None)  # Transient errors keep their retries.
    monkeypatch.setattr(util, '_new_session', _FlakySession)
    monkeypatch.setattr(_FlakySession, 'calls', 0)
    monkeypatch.setattr(_FlakySession, 'failures', 2)
    with util.open_url('https://example.invalid/x.bin', cache_dir=str(tmp_path), num_attempts=3, verbose=False) as f:
        assert f.read() == b'ok'
    assert _FlakySession.calls == 3

def test_open_url_unresolvable_host_fails_at_once(tmp_path, monkeypatch, capsys):
    # Offline: the name does not resolve. No retries, no retry lines, the usual one clear message.
    import socket
    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    for key in ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(util, '_new_session', lambda: pytest.fail('no download may be attempted'))
    url = 'https://nvlabs-fi-cdn.nvidia.com/x/inception.pt'
    with pytest.raises(util.OpenURLError, match='cannot resolve host nvlabs-fi-cdn.nvidia.com') as info:
        util.open_url(url, cache_dir=str(tmp_path), verbose=True)
    assert 'local path' in str(info.value) and capsys.readouterr().err == ''
    # Behind a proxy the proxy resolves names: the download is tried (and here fails as the stub says).
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')
    monkeypatch.setattr(util, '_new_session', _FlakySession)
    monkeypatch.setattr(_FlakySession, 'calls', 0)
    monkeypatch.setattr(_FlakySession, 'failures', 10**6)
    with pytest.raises(util.OpenURLError):
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=2, verbose=False)
    assert _FlakySession.calls == 2

def test_open_url_http_404_is_not_retried(tmp_path):
    class NotFound(_CountingHandler):
        def do_GET(self):
            _CountingHandler.hits.append(self.path)
            self.send_error(404)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _CountingHandler.hits.clear()
        url = f'http://127.0.0.1:{server.server_address[1]}/missing.pkl'
        with pytest.raises(util.OpenURLError, match='404'):
            util.open_url(url, cache_dir=str(tmp_path), num_attempts=5, verbose=False)
        assert _CountingHandler.hits == ['/missing.pkl']
    finally:
        server.shutdown()
        server.server_close()

#----------------------------------------------------------------------------

def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    # mkstemp makes 0600 files: snapshots others in the group could not read. The result must match open().
    old = os.umask(0o022)
    try:
        with util.atomic_write(tmp_path / 'atomic.bin') as f:
            f.write(b'x')
        with open(tmp_path / 'plain.bin', 'wb') as f:
            f.write(b'x')
        os.umask(0o077)
        with util.atomic_write(tmp_path / 'private.bin') as f:
            f.write(b'x')
    finally:
        os.umask(old)
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777  # noqa: E731
    assert mode('atomic.bin') == mode('plain.bin') == 0o644
    assert mode('private.bin') == 0o600
