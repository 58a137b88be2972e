"""The HTTP sink's access token (``http.token``).

With a token configured, every request needs it (the page, its assets and JSON, the preview, ``/latest``;
``/metrics`` and ``/healthz`` too unless ``http.public_metrics``). A client gives it one of three ways:
``?token=`` in the URL (a link for the browser: the page answers with a cookie and a redirect to the
same URL without the token), the cookie ``edge_fer_token_<port>`` (HttpOnly, SameSite=Strict), or an
``Authorization: Bearer <token>`` header (scripts, Prometheus' ``authorization`` setting). Comparisons
run in constant time (:func:`hmac.compare_digest`). Without a token nothing is required: the config
(:func:`edge_fer.config.check_http`) allows that only on a loopback address.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

COOKIE_MAX_AGE_S = 30 * 24 * 3600
OPEN_WITH_PUBLIC_METRICS = ("/metrics", "/healthz")


class TokenCheck:
    def __init__(self, token: str, port: int, public_metrics: bool = False) -> None:
        self._token = token.encode()
        self.cookie_name = f"edge_fer_token_{port}"  # cookies ignore the port: one name per server
        self.public_metrics = public_metrics

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def required(self, path: str) -> bool:
        if not self._token:
            return False
        return not (self.public_metrics and path in OPEN_WITH_PUBLIC_METRICS)

    def matches(self, given: str | None) -> bool:
        if not self._token or given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token)

    def allows(self, authorization: str | None, cookie_header: str | None, query: Mapping[str, list[str]]) -> bool:
        """Whether the request's query token, bearer token (``Authorization`` header) or cookie is the token."""
        candidates = list(query.get("token", []))[:4]
        auth = authorization or ""
        if auth[:7].lower() == "bearer ":
            candidates.append(auth[7:].strip())
        cookie = self.cookie(cookie_header)
        if cookie is not None:
            candidates.append(cookie)
        ok = False
        for c in candidates:  # each compared in full: no early exit on the first match
            ok |= self.matches(c)
        return ok

    def cookie(self, header: str | None) -> str | None:
        if not header or len(header) > 8192:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name)
        return morsel.value if morsel is not None else None

    def set_cookie(self) -> str:
        """The ``Set-Cookie`` value that keeps the token in the browser."""
        return (
            f"{self.cookie_name}={self._token.decode()}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict"
        )
