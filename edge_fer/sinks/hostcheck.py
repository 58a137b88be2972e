"""The HTTP sink's ``Host`` header check against DNS rebinding.

A web page in a browser on the device could otherwise point its own DNS name at 127.0.0.1 and read
``/latest``. Requests whose ``Host`` header names anything else than ``localhost`` (or
``*.localhost``), an IP address (an IP literal cannot be rebound), the bound host name, or this
machine's name (``<hostname>``, ``<hostname>.local``) are refused, unless the name is listed in
``allowed_hosts`` (config ``http.allowed_hosts``: comma-separated; ``.example.com`` also allows its
subdomains; ``*`` turns the check off). Requests without a ``Host`` header (HTTP/1.0 tools) are answered.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable


class HostCheck:
    def __init__(self, bound_host: str, allowed_hosts: str | Iterable[str] | None = None) -> None:
        self.allowed = _host_names(allowed_hosts)
        self._trusted = {"localhost", _host_only(bound_host)} - {"", "0.0.0.0", "::"}
        try:
            me = socket.gethostname().lower()
            self._trusted |= {me, f"{me}.local", me.split(".")[0]} - {""}
        except OSError:
            pass

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered (see the module docstring)."""
        if header is None or "*" in self.allowed:
            return True
        name = _host_only(header)
        if not name:
            return False
        if name in self._trusted or name.endswith(".localhost") or name in self.allowed:
            return True
        if any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in self.allowed):
            return True
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
            return True
        except ValueError:
            return False


def _host_only(header: str) -> str:
    """The host part of a ``Host`` header (no port, no IPv6 brackets, no trailing dot), lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else ""
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _host_names(value: str | Iterable[str] | None) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return frozenset(n for n in (str(i).strip().lower().rstrip(".") for i in items) if n)
