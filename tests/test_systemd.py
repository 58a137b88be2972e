"""sd_notify against a real unix datagram socket (a path and an abstract-namespace address)."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from edge_fer import systemd


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
        env = addr
    else:
        name = f"edge-fer-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env = "@" + name
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", env)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def nothing_pending(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
        return False
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2.0)


def test_messages(notify_socket):
    assert systemd.ready()
    assert recv(notify_socket) == "READY=1"
    assert systemd.ready(status="first frame\nprocessed")
    assert recv(notify_socket) == "READY=1\nSTATUS=first frame processed"
    assert systemd.status("24.5 fps, 2 faces")
    assert recv(notify_socket) == "STATUS=24.5 fps, 2 faces"
    assert systemd.stopping()
    assert recv(notify_socket) == "STOPPING=1"
    assert systemd.notify("EXTEND_TIMEOUT_USEC=5000000")
    assert recv(notify_socket) == "EXTEND_TIMEOUT_USEC=5000000"


def test_watchdog_rate_limited_to_half_the_interval(notify_socket, monkeypatch):
    now = [100.0]
    n = systemd.Notifier(clock=lambda: now[0])
    assert n.watchdog() is False  # no WATCHDOG_USEC: no watchdog configured
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")  # WatchdogSec=10
    assert n.watchdog_interval() == 5.0
    assert n.watchdog() is True
    assert recv(notify_socket) == "WATCHDOG=1"
    for dt in (0.1, 2.0, 4.9):
        now[0] = 100.0 + dt
        assert n.watchdog() is False
    assert nothing_pending(notify_socket)
    now[0] = 105.0
    assert n.watchdog() is True
    assert recv(notify_socket) == "WATCHDOG=1"
    assert n.watchdog(force=True) is True
    assert recv(notify_socket) == "WATCHDOG=1"
    # A watchdog meant for another process (WATCHDOG_PID) does not apply to this one.
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    now[0] = 200.0
    assert n.watchdog_interval() is None and n.watchdog() is False
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert n.watchdog() is True
    assert recv(notify_socket) == "WATCHDOG=1"


def test_noop_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    assert systemd.ready() is False
    assert systemd.status("x") is False
    assert systemd.stopping() is False
    assert systemd.Notifier().watchdog() is False


@pytest.mark.parametrize("value", ["relative/path", "vsock:2:1234", ""])
def test_unusable_socket_values_are_ignored(monkeypatch, value):
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert systemd.ready() is False


def test_send_failure_never_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert systemd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "@edge-fer-no-such-abstract-" + uuid.uuid4().hex)
    assert systemd.status("x") is False
