"""`edge-fer models pull|list|remove` end to end against a real HTTP server on loopback (no network
is ever used: the pinned URLs are replaced by the test's own server, or urlopen is made to fail)."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
from dataclasses import replace
from pathlib import Path

import pytest

from edge_fer import models_store
from edge_fer.cli import main
from tests.cli import EDGE_FER, run_cli

PAYLOAD = os.urandom(5000) + b"model"  # made by the test: not a real model
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _send(handler, body: bytes) -> None:
    """A whole 200 answer with its Content-Length."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Server:
    """Serves ``routes`` (path -> bytes, or a callable(handler)) on 127.0.0.1; counts requests."""

    def __init__(self, routes):
        self.routes = routes
        self.hits: list[str] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                body = outer.routes.get(self.path)
                if callable(body):
                    return body(self)
                if body is None:
                    self.send_error(404)
                    return
                _send(self, body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("EDGE_FER_CACHE_DIR", str(d))
    return d / "models"


def _pin(monkeypatch, urls, sha=PAYLOAD_SHA, size=len(PAYLOAD)):
    """Point the registry's pinned values at the test's server (what `pull` uses without flags)."""
    spec = replace(models_store.KNOWN["yunet"], urls=tuple(urls), sha256=sha, size=size)
    monkeypatch.setitem(models_store.KNOWN, "yunet", spec)
    return spec


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_pull_downloads_from_the_pinned_url_and_verifies(cache, monkeypatch, capsys):
    with _Server({"/yunet.onnx": PAYLOAD}) as srv:
        _pin(monkeypatch, [srv.url("/yunet.onnx")])
        assert main(["models", "pull", "yunet"]) == 0
        out = capsys.readouterr().out
        dest = cache / "face_detection_yunet_2023mar.onnx"
        assert dest.read_bytes() == PAYLOAD
        assert "downloaded" in out and PAYLOAD_SHA in out and str(dest) in out
        assert stat.S_IMODE(dest.stat().st_mode) == 0o644
        assert _leftovers(cache) == [dest.name]  # no temporary file left behind
        # a second pull finds the good copy and does not download again
        assert main(["models", "pull", "yunet"]) == 0
        assert "already installed" in capsys.readouterr().out
        assert srv.hits == ["/yunet.onnx"]
    assert models_store.installed_path("yunet") == dest


def test_pull_falls_back_to_the_next_pinned_url(cache, monkeypatch, capsys):
    with _Server({"/b": PAYLOAD}) as srv:
        _pin(monkeypatch, [srv.url("/a"), srv.url("/b")])  # /a is a 404
        assert main(["models", "pull", "yunet"]) == 0
        assert srv.hits == ["/a", "/b"]
    assert (cache / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_leaves_nothing(cache, monkeypatch, capsys):
    tampered = PAYLOAD[:-5] + b"xxxxx"
    with _Server({"/m": tampered}) as srv:
        _pin(monkeypatch, [srv.url("/m")])
        assert main(["models", "pull", "yunet"]) == 2
    line = _one_line_error(capsys)
    assert hashlib.sha256(tampered).hexdigest() in line and PAYLOAD_SHA in line and "nothing installed" in line
    assert _leftovers(cache) == []
    assert models_store.installed_path("yunet") is None


def test_mismatch_never_replaces_a_good_install(cache, monkeypatch, capsys):
    with _Server({"/good": PAYLOAD, "/bad": b"not the model"}) as srv:
        _pin(monkeypatch, [srv.url("/good")])
        assert main(["models", "pull", "yunet"]) == 0
        assert main(["models", "pull", "yunet", "--url", srv.url("/bad")]) == 2
    capsys.readouterr()
    assert (cache / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["face_detection_yunet_2023mar.onnx"]


def test_a_transfer_cut_short_leaves_nothing(cache, monkeypatch, capsys):
    def cut(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(PAYLOAD)))
        handler.end_headers()
        handler.wfile.write(PAYLOAD[:100])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    with _Server({"/cut": cut}) as srv:
        _pin(monkeypatch, [srv.url("/cut")])
        assert main(["models", "pull", "yunet"]) == 69  # NetworkError (errors.EXIT_UNAVAILABLE)
    line = _one_line_error(capsys)
    assert "cannot download yunet" in line
    assert _leftovers(cache) == []


def test_a_bigger_file_than_pinned_is_refused(cache, monkeypatch, capsys):
    with _Server({"/big": PAYLOAD * 3}) as srv:
        _pin(monkeypatch, [srv.url("/big")])
        assert main(["models", "pull", "yunet"]) == 2
    assert "nothing installed" in _one_line_error(capsys)
    assert _leftovers(cache) == []


def test_no_network_is_one_clear_line(cache, monkeypatch, capsys):
    # the real pinned URLs, with name resolution failing the way it does on a machine without network
    def offline(req, timeout=None):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(models_store.urllib.request, "urlopen", offline)
    assert main(["models", "pull", "yunet"]) == 69
    line = _one_line_error(capsys)
    assert line.startswith("edge-fer: error: cannot download yunet from github.com, huggingface.co")
    assert "Temporary failure in name resolution" in line and "--from FILE" in line
    assert _leftovers(cache) == []


def test_connection_refused_on_loopback(cache, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    assert main(["models", "pull", "yunet", "--url", f"http://127.0.0.1:{port}/x.onnx", "--timeout", "5"]) == 69
    assert "refused" in _one_line_error(capsys).lower()


def test_a_redirect_loop_is_one_line(cache, capsys):
    def loop(h):
        h.send_response(302)
        h.send_header("Location", "/loop")
        h.end_headers()

    with _Server({"/loop": loop}) as srv:
        assert main(["models", "pull", "yunet", "--url", srv.url("/loop"), "--timeout", "5"]) == 69
    assert "redirect" in _one_line_error(capsys)  # urllib's reason spans three lines


def test_a_cache_that_cannot_be_created_is_exit_74(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EDGE_FER_CACHE_DIR", str(blocker))
    f = tmp_path / "model.onnx"
    f.write_bytes(PAYLOAD)
    assert main(["models", "pull", "yunet", "--from", str(f), "--no-verify"]) == 74
    assert "cannot create the model cache" in _one_line_error(capsys)


def test_from_a_fifo_says_what_it_is(cache, tmp_path, capsys):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    assert main(["models", "pull", "yunet", "--from", str(fifo), "--no-verify"]) == 2
    assert "is a FIFO (named pipe)" in _one_line_error(capsys)  # it said "no such file"


def test_from_file_checks_the_pinned_hash(cache, monkeypatch, tmp_path, capsys):
    f = tmp_path / "model.onnx"
    f.write_bytes(PAYLOAD)
    _pin(monkeypatch, ["http://127.0.0.1:9/never-used"])
    assert main(["models", "pull", "yunet", "--from", str(f)]) == 0
    assert "copied" in capsys.readouterr().out
    assert (cache / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD
    other = tmp_path / "other.onnx"
    other.write_bytes(b"something else")
    assert main(["models", "pull", "yunet", "--from", str(other)]) == 2
    assert "nothing installed" in _one_line_error(capsys)
    assert (cache / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD


def test_from_file_overrides_sha256_and_no_verify(cache, tmp_path, capsys):
    f = tmp_path / "mine.onnx"
    f.write_bytes(b"my own build of the detector")
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert main(["models", "pull", "yunet", "--from", str(f)]) == 2  # the real pinned hash: refused
    capsys.readouterr()
    assert main(["models", "pull", "yunet", "--from", str(f), "--sha256", digest.upper()]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["models", "pull", "yunet", "--from", str(f), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert digest in out and "not checked" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["models", "pull", "nosuch"], "unknown model 'nosuch'"),
        (["models", "pull", "yunet", "--from", "/no/such/file.onnx"], "No such file or directory"),
        (["models", "pull", "yunet", "--sha256", "abc"], "64 hex digits"),
        (["models", "pull", "yunet", "--url", "ftp://x/y"], "http(s)"),
        (["models", "pull", "yunet", "--from", "a", "--url", "http://127.0.0.1/x"], "not both"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(cache, capsys, argv, needle):
    assert main(argv) == 2
    assert needle in _one_line_error(capsys)
    assert _leftovers(cache) == []


def test_cache_location_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_FER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_store.models_dir() == tmp_path / "xdg" / "edge-fer" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the spec says: relative paths are ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models_store.models_dir() == tmp_path / "home" / ".cache" / "edge-fer" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert models_store.models_dir() == tmp_path / "home" / ".cache" / "edge-fer" / "models"


def test_list_and_remove(cache, monkeypatch, tmp_path, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "not installed" in out and models_store.KNOWN["yunet"].sha256 in out
    f = tmp_path / "m.onnx"
    f.write_bytes(PAYLOAD)
    _pin(monkeypatch, ["http://127.0.0.1:9/never-used"])
    assert main(["models", "pull", "yunet", "--from", str(f)]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert str(cache / "face_detection_yunet_2023mar.onnx") in capsys.readouterr().out
    assert main(["models", "remove", "yunet"]) == 0
    assert models_store.installed_path("yunet") is None


def test_the_pinned_values_are_the_opencv_zoo_release():
    s = models_store.KNOWN["yunet"]
    assert s.sha256 == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    assert s.size == 232_589
    assert s.urls[0].startswith("https://github.com/opencv/opencv_zoo/raw/") and s.urls[0].endswith(
        "face_detection_yunet_2023mar.onnx"
    )
    assert all(u.startswith("https://") for u in s.urls)


def test_yunet_needs_no_path_and_a_pulled_copy_updates_it(cache, capsys, request):
    from edge_fer.detect import create_detector
    from edge_fer.models import shipped_yunet

    # shipped in the package: no pull, no path (auto means the same now)
    assert Path(create_detector("yunet").model_path) == shipped_yunet()
    assert create_detector("auto").name == "yunet"
    onnx = request.getfixturevalue("other_yunet_model")  # skips when ../shared/data is absent
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()  # a test fixture, not the Zoo release
    assert main(["models", "pull", "yunet", "--from", str(onnx), "--sha256", digest]) == 0
    det = create_detector("yunet")
    assert Path(det.model_path) == cache / "face_detection_yunet_2023mar.onnx"  # the pulled copy wins
    assert main(["models", "remove", "yunet"]) == 0
    assert Path(create_detector("yunet").model_path) == shipped_yunet()  # ... until it is removed
    import numpy as np

    assert det.detect(np.zeros((120, 160, 3), np.uint8)) == []


def test_another_yunet_build_needs_its_own_digest(cache, capsys, other_yunet_model):
    """A YuNet file that is not the pinned release is refused by the pinned digest, and installed
    when the user names its own with --sha256."""
    from edge_fer.detect import create_detector

    digest = hashlib.sha256(other_yunet_model.read_bytes()).hexdigest()
    assert digest != models_store.KNOWN["yunet"].sha256
    assert main(["models", "pull", "yunet", "--from", str(other_yunet_model)]) == 2
    line = _one_line_error(capsys)
    assert digest in line and "nothing installed" in line
    assert models_store.installed_path("yunet") is None
    assert main(["models", "pull", "yunet", "--from", str(other_yunet_model), "--sha256", digest]) == 0
    assert create_detector("yunet").model_path == str(cache / "face_detection_yunet_2023mar.onnx")


def test_nothing_is_downloaded_without_pull(cache, monkeypatch):
    """Building the runtime's detectors never touches the network."""

    def boom(*a, **k):
        raise AssertionError("network used")

    monkeypatch.setattr(models_store.urllib.request, "urlopen", boom)
    from edge_fer.detect import create_detector

    create_detector("haar")
    create_detector("yunet")  # the shipped model
    assert models_store.installed_path("yunet") is None
    shutil.rmtree(cache.parent, ignore_errors=True)


def test_one_cache_folder_for_models_and_the_backend_probe(tmp_path):
    """`EDGE_FER_CACHE_DIR` (what `doctor` and the start-up probe honour) also holds pulled models, and
    `EDGE_FER_CACHE`, the older name, still works: one variable moves all of edge-fer's cache."""
    f = tmp_path / "m.onnx"
    f.write_bytes(PAYLOAD)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_FER_", "XDG_"))}
    base["HOME"] = str(tmp_path / "home")
    for var in ("EDGE_FER_CACHE_DIR", "EDGE_FER_CACHE"):
        env = {**base, var: str(tmp_path / var)}
        r = run_cli("models", "pull", "yunet", "--from", f, "--sha256", PAYLOAD_SHA, env=env)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / var / "models" / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD
    assert not (tmp_path / "home").exists()  # nothing went to ~/.cache behind the variable's back


# -- a mirror that drips, a pull that was killed (the installed command, a real loopback server) ----------


def _drip(handler):
    """Announce the whole payload, then send one byte every 0.5 s (for about 40 minutes)."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
    try:
        for b in PAYLOAD:
            handler.wfile.write(bytes([b]))
            handler.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass


def _pull_cmd(url: str) -> list[str]:
    return [EDGE_FER, "models", "pull", "yunet", "--url", url, "--sha256", PAYLOAD_SHA, "--timeout", "3"]


def test_a_dripping_mirror_fails_within_the_timeout(tmp_path):
    env = {**os.environ, "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    with _Server({"/m.onnx": _drip}) as srv:
        t0 = time.monotonic()
        proc = subprocess.run(_pull_cmd(srv.url("/m.onnx")), env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
    assert proc.returncode == 69, proc.stderr[-2000:]
    assert "took longer than --timeout 3s" in proc.stderr, proc.stderr[-2000:]
    assert took < 30, took  # before: about 40 minutes for this 5 KB payload
    assert _leftovers(tmp_path / "cache" / "models") == []


def test_a_killed_pull_leaves_a_part_file_the_next_pull_removes(tmp_path):
    env = {**os.environ, "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    models = tmp_path / "cache" / "models"
    with _Server({"/m.onnx": _drip, "/ok.onnx": PAYLOAD}) as srv:
        proc = subprocess.Popen(_pull_cmd(srv.url("/m.onnx")), env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not list(models.glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert list(models.glob("*.part")), "the killed pull left no .part file to clean"
        ok = subprocess.run(_pull_cmd(srv.url("/ok.onnx")), env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert not list(models.glob("*.part"))


# -- secrets, a full cache, bad flag values (the installed command) ---------------------------------------


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def _run_with_stderr_on_a_tty(*args, env) -> tuple[int, str]:
    """Run the installed command with its stderr on a terminal (where pull prints what it fetches)."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = run_cli(*args, env=env, capture_output=False, stdout=subprocess.PIPE, stderr=slave, timeout=60)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    return proc.returncode, proc.stdout + b"".join(chunks).decode(errors="replace")


def test_a_mirror_password_never_shows(tmp_path):
    env = {**os.environ, "EDGE_FER_DEBUG": "", "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    url = f"http://mirror:s3cretPW@127.0.0.1:{_free_port()}/x.onnx"
    # nothing listens: the error line, the debug log (-v) and the "fetching" line on a terminal
    rc, out = _run_with_stderr_on_a_tty("-v", "models", "pull", "yunet", "--url", url, "--timeout", "3", env=env)
    assert rc == 69, out
    assert "s3cretPW" not in out, out
    assert "cannot download yunet from mirror:***@127.0.0.1" in out and "fetching" in out, out
    # a mirror that asks for the password gets it (basic authentication), and still nothing shows it
    auth = "Basic " + __import__("base64").b64encode(b"mirror:s3cretPW").decode()

    def private(h):
        if h.headers.get("Authorization") != auth:
            h.send_error(401)
            return
        _send(h, PAYLOAD)

    with _Server({"/m.onnx": private}) as srv:
        url = srv.url("/m.onnx").replace("http://", "http://mirror:s3cretPW@")
        rc, out = _run_with_stderr_on_a_tty(
            "-v", "models", "pull", "yunet", "--url", url, "--sha256", PAYLOAD_SHA, "--timeout", "5", env=env
        )
    assert rc == 0, out
    assert "s3cretPW" not in out and "downloaded" in out, out
    assert (tmp_path / "cache" / "models" / "face_detection_yunet_2023mar.onnx").read_bytes() == PAYLOAD


def _real_yunet() -> bytes:
    from edge_fer.models import shipped_yunet

    return Path(shipped_yunet()).read_bytes()  # the pinned release: the default size limit lets it through


def test_a_full_cache_is_exit_74_naming_the_cache_file(tmp_path):
    from tests.cli import mounted_tmpfs
    from tests.test_reliability_io import assert_one_clean_error

    real = _real_yunet()
    src = tmp_path / "yunet.onnx"
    src.write_bytes(real)
    with mounted_tmpfs(tmp_path / "full", "12k") as full, _Server({"/good": real}) as srv:
        env = {**os.environ, "EDGE_FER_DEBUG": "", "EDGE_FER_CACHE_DIR": str(full)}
        for how in (["--url", srv.url("/good")], ["--from", str(src)]):
            proc = run_cli("models", "pull", "yunet", *how, "--timeout", "10", env=env, timeout=60)
            line = assert_one_clean_error(proc, 74, str(full / "models" / models_store.KNOWN["yunet"].filename))
            assert "No space left on device" in line and "stdout" not in line and "No network" not in line, line
            assert _leftovers(full / "models") == []  # no partial file
        assert srv.hits == ["/good"]


def test_a_full_cache_tries_no_other_mirror(tmp_path, monkeypatch, capsys):
    from tests.cli import mounted_tmpfs

    real = _real_yunet()
    with mounted_tmpfs(tmp_path / "full", "12k") as full, _Server({"/a": real, "/b": real}) as srv:
        monkeypatch.setenv("EDGE_FER_CACHE_DIR", str(full))
        _pin(monkeypatch, [srv.url("/a"), srv.url("/b")], sha=models_store.KNOWN["yunet"].sha256, size=len(real))
        assert main(["models", "pull", "yunet", "--timeout", "10"]) == 74
        assert "cannot write the model cache file" in _one_line_error(capsys)
        assert srv.hits == ["/a"]  # the disk is full whichever mirror serves the file
        assert _leftovers(full / "models") == []


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--url", "http://[::1"], "--url"),
        (["--url", "http://"], "--url"),
        (["--url", "http://127.0.0.1:port/x.onnx"], "--url"),
        (["--url", "http://127.0.0.1:99999/x.onnx"], "--url"),
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "inf"], "--timeout"),
        (["--timeout", "1e12"], "--timeout"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "0"], "--timeout"),
    ],
)
def test_bad_url_and_timeout_values_are_one_line_exit_2(tmp_path, flags, needle):
    from tests.cli import assert_one_line_error

    env = {**os.environ, "EDGE_FER_DEBUG": "", "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli("models", "pull", "yunet", "--force", *flags, env=env, timeout=60)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "cache").exists()  # refused before the cache or the network is touched


def test_an_oversized_body_without_a_length_names_the_url(tmp_path):
    from tests.cli import assert_one_line_error

    size = models_store.KNOWN["yunet"].size

    def unannounced(h):  # HTTP/1.0, no Content-Length: the body ends when the connection closes
        h.send_response(200)
        h.end_headers()
        try:
            h.wfile.write(b"\0" * (size + 100_000))
        except OSError:
            pass

    env = {**os.environ, "EDGE_FER_DEBUG": "", "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    with _Server({"/big": unannounced}) as srv:
        url = srv.url("/big").replace("http://", "http://mirror:s3cretPW@")
        proc = run_cli("models", "pull", "yunet", "--url", url, "--timeout", "10", env=env, timeout=60)
    line = assert_one_line_error(proc, f"more than {size} bytes", url.replace("s3cretPW", "***"))
    assert "s3cretPW" not in proc.stderr and "nothing installed" in line
    assert _leftovers(tmp_path / "cache" / "models") == []
