"""Secrets never reach a log, an error, a status page or ``--print-config``: one place hides them.

* :func:`redact` - any text (a log line, an error message, a source name): the password of every URI
  (``rtsp://admin:***@cam/stream``; a userinfo without ``:`` could be a token and is hidden whole:
  ``https://***@host``), secret query parameters (``?user=admin&pwd=***``), and every value
  registered with :func:`register_secret` (the MQTT password, a camera password) wherever it appears.
* :func:`redact_config` - a config mapping: values of secret keys (``password``, ``token``, ...) become
  ``***``; every other string goes through :func:`redact`.
* :func:`install_log_redaction` - every log record of the process is redacted when it is created
  (message, arguments, exception text), whatever logger or handler it goes to, and so are tracebacks
  printed by ``sys.excepthook`` / ``threading.excepthook`` (``--debug``, a crash). Idempotent.

:class:`edge_fer.errors.EdgeFerError` redacts its message, so the CLI's one-line errors are covered too.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any

MASK = "***"

# config keys / query parameters whose values are secrets
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "access_token",
        "auth",
        "authorization",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "credentials",
    }
)

# scheme://userinfo@ : the userinfo stops at the authority's end ("/", "?", "#") or whitespace;
# greedy, so a password with an unencoded "@" is hidden up to the last "@" of the authority
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")
# scheme://user:password@ where the password holds unencoded reserved characters ("/", "?", "#", "@"):
# not well-formed, but what users type. Everything from the first ":" after the user name up to the
# last "@" before whitespace is taken as the password: redaction must not depend on a valid URL (a
# later "@" in a path hides more than needed, never less)
_LOOSE_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#\s@]*):(?P<pw>\S*)@")
# user:password@host without a scheme (a camera or mirror URL typed without rtsp:// or http://): the
# user name starts the text or follows a space, a quote, "(" or "="; the password runs to the last "@"
# before whitespace, a quote or "/"
_BARE_USERINFO = re.compile(r"(?P<pre>^|[\s'\"(=])(?P<user>[\w.~%!$&*+,;-]+):(?P<pw>[^\s'\"/]*)@(?=[\w\[])")
_QUERY_SECRET = re.compile(
    r"(?P<k>[?&;](?:" + "|".join(sorted(SECRET_KEYS, key=len, reverse=True)) + r")=)(?P<v>[^&;#\s'\"]*)",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4  # shorter registered secrets would mask ordinary text; they are hidden in URIs only

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed = False


def _hide_userinfo(m: re.Match[str]) -> str:
    info = m.group("info")
    user, sep, _ = info.partition(":")
    return f"{m.group('scheme')}{user}:{MASK}@" if sep and user else f"{m.group('scheme')}{MASK}@"


def _hide_loose(m: re.Match[str]) -> str:
    return f"{m.group('scheme')}{m.group('user')}:{MASK}@"


def _hide_bare(m: re.Match[str]) -> str:
    return f"{m.group('pre')}{m.group('user')}:{MASK}@"


def _hide_query_value(m: re.Match[str]) -> str:
    v = m.group("v")
    kept = v[len(v.rstrip(":,.)]")) :]  # punctuation of the text around the URL ("...&pwd=x: failed")
    return m.group("k") + MASK + kept


def register_secret(value: str | None) -> None:
    """Hide ``value`` wherever it appears in redacted text from now on (ignored when shorter than 4)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value)


def register_uri_secrets(uri: str | None) -> None:
    """Register the password (or token) in a URI's userinfo and its secret query values."""
    if not uri:
        return
    for m in _LOOSE_USERINFO.finditer(uri):
        register_secret(m.group("pw"))
    for m in _USERINFO.finditer(uri):
        user, sep, pw = m.group("info").partition(":")
        register_secret(pw if sep else user)
    if "://" not in uri:
        for m in _BARE_USERINFO.finditer(uri):
            register_secret(m.group("pw"))
    for m in _QUERY_SECRET.finditer(uri):
        register_secret(m.group("v"))


def redact(text: Any) -> str:
    """``text`` (made a string) with credentials hidden; see the module docstring."""
    s = text if isinstance(text, str) else str(text)
    if "://" in s:
        if "@" in s:
            s = _LOOSE_USERINFO.sub(_hide_loose, s)
        s = _USERINFO.sub(_hide_userinfo, s)
    if "@" in s and ":" in s:
        s = _BARE_USERINFO.sub(_hide_bare, s)
    if "=" in s:
        s = _QUERY_SECRET.sub(_hide_query_value, s)
    if _secrets:
        with _secrets_lock:
            secrets = sorted(_secrets, key=len, reverse=True)
        for sec in secrets:
            if sec in s:
                s = s.replace(sec, MASK)
    return s


def is_secret_key(key: str) -> bool:
    """``mqtt.password``, ``password``, ``api_token`` ... (the last dotted part, by name)."""
    k = key.rsplit(".", 1)[-1].lower()
    return k in SECRET_KEYS or k.endswith(("_password", "_secret", "_token"))


def redact_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a (nested) config mapping that is safe to print."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping):
            out[k] = redact_config(v)
        elif is_secret_key(str(k)) and v not in ("", None):
            out[k] = MASK
        elif isinstance(v, str):
            out[k] = redact(v)
        else:
            out[k] = v
    return out


def install_log_redaction() -> None:
    """Redact every log record at creation (all loggers, all handlers). Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 (a bad format string: let the handler report it as usual)
            return record
        record.msg, record.args = redact(msg), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)

    # tracebacks (``--debug``, a crash, an exception in a thread) are printed redacted too
    if sys.excepthook is sys.__excepthook__:

        def excepthook(etype: type[BaseException], value: BaseException, tb: Any) -> None:
            sys.stderr.write(redact("".join(traceback.format_exception(etype, value, tb))))

        sys.excepthook = excepthook
    if threading.excepthook is threading.__excepthook__:

        def thread_excepthook(args: Any) -> None:
            if args.exc_type is SystemExit:
                return
            name = args.thread.name if args.thread is not None else "?"
            text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
            sys.stderr.write(redact(f"Exception in thread {name}:\n{text}"))

        threading.excepthook = thread_excepthook


__all__ = [
    "MASK",
    "SECRET_KEYS",
    "redact",
    "redact_config",
    "register_secret",
    "register_uri_secrets",
    "is_secret_key",
    "install_log_redaction",
]
