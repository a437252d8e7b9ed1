"""HTTP requests bounded in time, in size and to one origin, with the standard library alone
(Blender's Python has no ``requests``); ``remote.py`` speaks vp3d's API through it.

- **Time.** A socket timeout bounds each wait for a byte, not a request: a server that drips a
  byte every few seconds never trips it. A :class:`Deadline` bounds the request start to end: the
  body is read in chunks as they come (``read1``) against the clock, and at the deadline a
  watchdog shuts the request's sockets down, which also ends a status line, a TLS handshake or an
  upload that drips (and :meth:`Deadline.expire` is how a cancel ends a request at once).
- **Size.** :func:`read_body` refuses a body over its bound, declared or sent, and hands it on in
  chunks (the caller streams it to disk or keeps a small one).
- **Origin.** :func:`opener` speaks http and https only and follows a redirect only within the
  request's scheme, host and port (headers, the token among them, go along); any other redirect
  raises :class:`Redirected` before a byte is sent there.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "Expired", "Redirected", "TooBig", "opener", "origin", "read_body"]

_CHUNK = 1 << 16


class TooBig(Exception):
    """The body is larger than its bound."""


class Expired(Exception):
    """The request's deadline passed."""


class Redirected(Exception):
    """A redirect off the request's origin, refused: where it pointed."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of ``url`` (the default port when none is written); None if unreadable."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class Deadline:
    """One request's time limit, start to end, and the watchdog that enforces it on blocked I/O."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.name, self._timer.daemon = "vp3d-deadline", True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        """End the request now: blocked reads return, blocked writes fail (the watchdog; cancel)."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def check(self) -> None:
        if self.expired or time.monotonic() >= self.end:
            self.expired = True
            raise Expired

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
        self._timer.cancel()
        if self._timer is not threading.current_thread():
            self._timer.join()


def _shut(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: an SSLSocket's own drops its state
    except OSError:
        pass  # already closed, or handed over to TLS (then the TLS socket is watched too)


class _Watched(http.client.HTTPConnection):
    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        kwargs["timeout"] = max(0.05, min(kwargs.get("timeout") or 30.0, deadline.remaining()))
        super().__init__(host, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedTLS(http.client.HTTPSConnection):
    """As :class:`http.client.HTTPSConnection`, with the TLS socket watched before its handshake."""

    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        kwargs["timeout"] = max(0.05, min(kwargs.get("timeout") or 30.0, deadline.remaining()))
        super().__init__(host, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and a proxy's CONNECT when there is one
        self._deadline.watch(self.sock)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(self.sock, server_hostname=self._tunnel_host or self.host,  # type: ignore[attr-defined]
                                        do_handshake_on_connect=False)
        self._deadline.watch(self.sock)
        self.sock.do_handshake()


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_Watched, deadline=self._deadline), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedTLS, deadline=self._deadline), req,
                            context=self._context)  # type: ignore[attr-defined]


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follows a redirect within the request's origin (the token goes along); refuses any other
    before a byte is sent there."""

    def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                       headers: Any) -> Any:
        target = urllib.parse.urljoin(req.full_url, headers.get("Location") or headers.get("URI") or "")
        if origin(target) != origin(req.full_url):
            fp.close()
            raise Redirected(target)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """http and https only (no ftp, file or data handlers), proxies as the environment says."""
    director = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _HTTP(deadline), _HTTPS(deadline),
                    urllib.request.HTTPDefaultErrorHandler(), _SameOrigin(), urllib.request.HTTPErrorProcessor()):
        director.add_handler(handler)
    return director


def read_body(response: Any, sink: Callable[[bytes], object], limit: int, deadline: Deadline) -> None:
    """The body into ``sink`` in chunks as they come (``read1``: a dripping body returns byte by
    byte, so the clock is looked at), refusing more than ``limit`` bytes, declared or sent."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise TooBig
    total = 0
    while True:
        deadline.check()
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise TooBig
        sink(chunk)
    deadline.check()  # an end of data that was the watchdog's doing
    if getattr(response, "length", None):
        raise http.client.IncompleteRead(b"", response.length)
