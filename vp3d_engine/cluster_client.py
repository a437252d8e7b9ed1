"""vp3d's Dask client, safe against the cluster it talks to: it reads data from it, never code.

:mod:`vp3d_engine.cluster` reaches the scheduler with :func:`connect` and reads each clip's answer
with :func:`fetch_result`; nothing here knows what a batch is.

- Data back, never code: a task returns a plain dict of str and bytes (a :class:`RemoteResult` as
  :func:`dataclasses.asdict` makes it) that the client reads as msgpack only. The client unpickles
  nothing a worker or the scheduler sends (not results, not errors, not the result types Dask's
  client would unpickle, not events: :func:`refuse_unpickling` and :func:`_data_only_client`),
  refuses a result bigger than its limit before fetching it (:func:`fetch_result`), and checks each
  one (:func:`check_result`: fields, types, file names against the planned targets, sizes) before
  anything is written. A task that fails with a raised error is a :class:`RemoteTaskError` that
  names the error's class (:func:`remote_error_name`, which reads the pickle without loading it).
- ``tls://``: Dask's TLS, with the certificates from Dask's own configuration
  (``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._CLIENT__CERT``, ``..._CLIENT__KEY`` or a Dask
  config file); both ends prove themselves with a certificate from the cluster's CA, so a machine
  without one can neither join as a worker nor submit work. ``tcp://`` trusts the network (a
  ``tcp://`` address off this machine is warned about).
- Before connecting, the client checks that the server greets as a Dask server does (at once,
  with a msgpack handshake): anything else is "not a Dask scheduler" within
  :data:`HANDSHAKE_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import pickletools
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from converters.errors import ConfigurationError, ConversionError
from converters.fileio import printable

if TYPE_CHECKING:
    from vp3d_engine.jobs import Job

__all__ = ["NotUnpickled", "RemoteResult", "RemoteTaskError", "check_result", "connect", "fetch_result",
           "refuse_unpickling", "remote_error_name"]

log = logging.getLogger(__name__)

#: How long the client waits to reach the scheduler.
CONNECT_TIMEOUT_S = 15.0
#: How long a server has to greet as Dask servers do (at once) before it is "not a Dask scheduler".
HANDSHAKE_TIMEOUT_S = 4.0
TLS_SETTINGS = ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY")


@dataclass
class RemoteResult:
    """What a worker hands back (from :func:`vp3d_engine.cluster.run_remote`, as a plain dict:
    :func:`dataclasses.asdict` of this): the line to print, the output files' bytes by ending (none
    with --shared-fs), or the failure: ``error`` is ``input`` (a Vp3dError: the clip's fault, the
    message says what to do), ``os`` (the worker machine's) or ``bug`` (with ``traceback``)."""

    line: str = ""
    outputs: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    message: str = ""
    traceback: str = ""
    worker: str = ""


class RemoteTaskError(Exception):
    """A task that failed with an error raised on the cluster, which the client does not unpickle:
    ``name`` is the class its pickle names (read by :func:`remote_error_name`), or None."""

    def __init__(self, name: str | None) -> None:
        super().__init__(name or "an unreadable error")
        self.name = name


# --- what comes back: checked data ---------------------------------------------------------------


_FIELDS: dict[str, type | tuple[type, ...]] = {"line": str, "outputs": dict, "error": (str, type(None)),
                                               "message": str, "traceback": str, "worker": str}
_TEXT_LIMITS = {"line": 1 << 16, "message": 1 << 16, "worker": 1 << 10, "traceback": 1 << 20}


def check_result(raw: object, job: Job, limit: int, shared: bool = False, worker: str = "a worker") -> RemoteResult:
    """A worker's answer for ``job`` as a :class:`RemoteResult`, once it is one: a dict of exactly
    its fields, of their types, its files among ``job``'s targets (none with ``shared``), ``limit``
    bytes in all at most. Anything else is a :class:`ConversionError` that says what came back; its
    text is shown escaped (a worker's text cannot move the terminal)."""

    def refuse(what: str) -> ConversionError:
        return ConversionError(f"{job.source}: {worker} sent back {what}, not a vp3d result; nothing of it was written "
                               "(a worker that does this is broken or hostile: see which machines can join the "
                               "scheduler; --scheduler tls:// admits only those with the cluster's certificate)")

    if not isinstance(raw, dict):
        raise refuse("None" if raw is None else f"a {type(raw).__name__}")
    if set(raw) != set(_FIELDS) or not all(isinstance(raw[k], t) for k, t in _FIELDS.items()):
        got = ", ".join(f"{printable(k)[:40]}: {type(v).__name__}" for k, v in list(raw.items())[:10])
        raise refuse(f"a dict of {{{got}}}")
    outputs: dict[Any, Any] = raw["outputs"]
    if raw["error"] not in (None, "input", "os", "bug"):
        raise refuse(f"an error of kind {printable(raw['error'])[:40]!r}")
    total = sum(len(raw[k]) for k in _TEXT_LIMITS) + sum(len(v) for v in outputs.values() if isinstance(v, bytes))
    if total > limit:
        raise refuse(f"{total:,} bytes (more than the {limit:,} this input allows)")
    for key, most in _TEXT_LIMITS.items():
        if len(raw[key]) > most:
            raise refuse(f"a {key} of {len(raw[key]):,} characters (at most {most:,})")
    targets = {str(t) for t in job.targets}
    for suffix, data in outputs.items():
        if not isinstance(suffix, str) or not isinstance(data, bytes):
            raise refuse(f"a file {printable(suffix)[:80]!r} of type {type(data).__name__}")
        if shared or "/" in suffix or "\\" in suffix or "\0" in suffix or str(job.stem) + suffix not in targets:
            raise refuse(f"a file {job.name}{printable(suffix)[:80]} that this run did not ask for")
    if raw["error"] is None and not shared and not outputs:
        raise refuse("no files")
    if raw["error"] is None and not raw["line"].startswith((f"{job.source}: ", f"{printable(job.source)}: ")):
        raise refuse(f"a line about something else ({printable(raw['line'])[:80]!r})")
    return RemoteResult(line=printable(raw["line"]), outputs=outputs, error=raw["error"],
                        message=printable(raw["message"]),
                        traceback="\n".join(printable(line) for line in raw["traceback"].splitlines()),
                        worker=printable(raw["worker"]))


def fetch_result(client: Any, future: Any, job: Job, limit: int, shared: bool) -> RemoteResult:
    """A finished task's result, fetched as msgpack if its worker reports it within ``limit``, and
    checked (:func:`check_result`)."""
    try:
        holders = client.who_has([future]).get(future.key) or ()
        worker = f"worker {printable(holders[0])}" if holders else "a worker"
    except Exception:  # only for messages
        worker = "a worker"
    size = client.nbytes([future.key], summary=False).get(future.key, 0)
    if not isinstance(size, int) or size > limit:
        raise ConversionError(f"{job.source}: {worker} holds a result of {size:,} bytes, more than the {limit:,} this "
                              "input allows (see vp3d_engine.cluster.max_result_bytes); nothing of it was written")
    try:
        raw = client.gather(future, direct=False)
    except Exception as exc:  # data that is not msgpack (a pickle, say): refused unread, the clip failed
        raise ConversionError(f"{job.source}: {worker} sent back data vp3d does not read ({type(exc).__name__}: "
                              f"{printable(exc)[:200]}); nothing of it was written") from None
    return check_result(raw, job, limit, shared, worker)


def remote_error_name(blob: object) -> str | None:
    """The dotted name of the exception class a failed task's pickled error names (the first
    ``...Error``-like global it refers to), read by parsing the pickle's opcodes with
    :mod:`pickletools`, which runs nothing; None when there is none to read (compressed, not a
    pickle, no such name). ``blob``: bytes, or Dask's ``Serialized`` (header and frames) as the
    scheduler sent it."""
    data: Any = blob
    header, frames = getattr(blob, "header", None), getattr(blob, "frames", None)
    if isinstance(header, dict) and isinstance(frames, list | tuple):
        plain = not any(header.get("compression") or ())
        readable = header.get("serializer") == "pickle" or (header.get("serializer") == "dask"
                                                            and header.get("type") == "bytes")
        data = frames[0] if frames and plain and readable else None
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) > 1 << 20:
        return None
    names: list[str] = []
    pushed: list[str | None] = []  # what each opcode pushed: a string, or something else (None)
    memo: dict[int, str | None] = {}
    try:
        for op, arg, _ in pickletools.genops(bytes(data)):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                pushed.append(str(arg))
            elif op.name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = pushed[-1] if pushed else None  # type: ignore[arg-type]
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(int(arg)))  # type: ignore[arg-type]
            elif op.name in ("STACK_GLOBAL", "GLOBAL"):
                if op.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif len(pushed) >= 2 and pushed[-2] and pushed[-1]:
                    names.append(f"{pushed[-2]}.{pushed[-1]}")
                pushed.append(None)  # the class itself
            elif op.stack_after:
                pushed.append(None)
    except Exception:  # a truncated or malformed pickle: the names read so far
        pass
    errors = [n for n in names if n.endswith(("Error", "Exception", "Exit", "Interrupt", "KilledWorker"))]
    return printable(errors[0])[:200] if errors else None


# --- the client: never unpickles -----------------------------------------------------------------


class NotUnpickled:
    """What the client holds where Dask would have unpickled bytes from the network."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not unpickled: vp3d's Dask client reads no pickles>"


_NOT_UNPICKLED = NotUnpickled()
_GUARD_LOCK = threading.Lock()
_GUARD: list[tuple[object, str, object]] = []  # (module, attribute, original) while refusing
_GUARD_DEPTH = 0


def _not_unpickled(data: object, *args: object, **kwargs: object) -> NotUnpickled:
    log.info("refused to unpickle %d bytes from the cluster", len(data) if isinstance(data, bytes) else -1)
    return _NOT_UNPICKLED


@contextlib.contextmanager
def refuse_unpickling() -> Iterator[None]:
    """While inside, Dask's client code in this process unpickles nothing: the two functions it
    unpickles with (``distributed.protocol.pickle.loads``, which serves every pickle Dask's
    protocol carries, and ``distributed.client.loads``) return a :class:`NotUnpickled` instead.
    A pickle from a hostile worker (or from a scheduler it fooled) runs no code here. The client
    process needs no pickle from the cluster: results come as msgpack, errors are read by
    :func:`remote_error_name`."""
    global _GUARD_DEPTH
    import distributed.client as dask_client
    import distributed.protocol.pickle as dask_pickle

    with _GUARD_LOCK:
        if _GUARD_DEPTH == 0:
            if not all(callable(getattr(module, "loads", None)) for module in (dask_pickle, dask_client)):
                raise ConfigurationError("this version of Dask's distributed package is not one vp3d knows how to "
                                         "keep from unpickling; install the one in constraints.txt")
            for module in (dask_pickle, dask_client):
                _GUARD.append((module, "loads", module.loads))
                setattr(module, "loads", _not_unpickled)  # noqa: B010  (a module's attribute, patched on purpose)
        _GUARD_DEPTH += 1
    try:
        yield
    finally:
        with _GUARD_LOCK:
            _GUARD_DEPTH -= 1
            if _GUARD_DEPTH == 0:
                while _GUARD:
                    owner, name, original = _GUARD.pop()
                    setattr(owner, name, original)


def _data_only_client() -> type:
    """Dask's Client, less what it would unpickle from the scheduler's report stream: messages
    there stay serialized (a failed task's error is read by :func:`remote_error_name`, never
    loaded), the type of a finished result is not read, and no event topics (print, warn: pickles)
    are subscribed to. Results and replies come through its RPCs as msgpack only."""
    from distributed import Client

    class DataOnlyClient(Client):
        async def _ensure_connected(self, timeout: float | None = None) -> None:
            await super()._ensure_connected(timeout=timeout)
            if self.scheduler_comm is not None and self.scheduler_comm.comm is not None:
                self.scheduler_comm.comm.deserialize = False

        def _handle_key_in_memory(self, key: Any = None, type: Any = None, workers: Any = None) -> None:
            super()._handle_key_in_memory(key=key, type=None, workers=workers)

        def _handle_task_erred(self, key: Any = None, exception: Any = None, traceback: Any = None) -> None:
            state = self.futures.get(key)
            if state is not None:
                state.set_error(RemoteTaskError(remote_error_name(exception)), None)

        def subscribe_topic(self, topic: Any, handler: Any) -> None:
            return None

        async def _handle_event(self, topic: Any, event: Any) -> None:
            return None

    for name in ("_ensure_connected", "_handle_key_in_memory", "_handle_task_erred", "_handle_event"):
        if not callable(getattr(Client, name, None)):
            raise ConfigurationError("this version of Dask's distributed package is not one vp3d's client knows; "
                                     "install the one in constraints.txt")
    return DataOnlyClient


def _split_address(address: str) -> tuple[str, str, int]:
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    return scheme, host.strip("[]"), int(port)


def _security(address: str) -> tuple[Any, ssl.SSLContext | None]:
    """Dask's security settings from its own configuration (``DASK_DISTRIBUTED__COMM__TLS__*``
    or a Dask config file), and the TLS context of a ``tls://`` address."""
    from distributed.security import Security

    try:
        security = Security()
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"Dask's TLS settings cannot be read ({exc})") from None
    if not address.startswith("tls://"):
        if security.require_encryption:
            raise ConfigurationError(f"Dask's configuration requires encryption (distributed.comm.require-encryption): "
                                     f"give --scheduler {address.replace('tcp://', 'tls://', 1)}")
        return security, None
    files = {setting: getattr(security, attribute, None) for setting, attribute in
             zip(TLS_SETTINGS, ("tls_ca_file", "tls_client_cert", "tls_client_key"), strict=True)}
    if not files[TLS_SETTINGS[0]] or not files[TLS_SETTINGS[1]]:
        raise ConfigurationError(f"--scheduler {address} needs this machine's certificate from the cluster's CA: "
                                 f"set {TLS_SETTINGS[0]} (the CA's ca.pem), {TLS_SETTINGS[1]} and {TLS_SETTINGS[2]} "
                                 "(a pair made by scripts/make_cluster_certs.sh), or distributed.comm.tls.* in a Dask "
                                 "config file")
    for setting, path in files.items():
        if path and "\n" not in path and not os.path.isfile(path):
            raise ConfigurationError(f"{setting}={path}: no such file")
    try:
        context = security.get_connection_args("client")["ssl_context"]
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load this machine's TLS certificate ({exc}); check "
                                 f"{', '.join(TLS_SETTINGS)}: the key must match the certificate") from None
    return security, context


def _greeting(address: str, context: ssl.SSLContext | None) -> None:
    """Check that ``address`` greets as a Dask server does: at once, unasked, with its handshake
    (an 8-byte length, then msgpack frames), over TLS for ``tls://``. Raises a
    :class:`ConfigurationError` that says what it did instead."""
    import msgpack

    scheme, host, port = _split_address(address)

    def not_dask(why: str) -> ConfigurationError:
        hint = (" (a scheduler started with --protocol tls is reached with --scheduler tls://...)"
                if scheme == "tcp" else "")
        return ConfigurationError(f"{address} is not a Dask scheduler: {why}; check the address (`dask scheduler` "
                                  f"prints it){hint}")

    try:
        raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise ConfigurationError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}); start one "
                                 f"with `dask scheduler` and workers with `dask worker {address}`") from None
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S

    def read(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("closed")
            data += chunk
        return data

    with contextlib.closing(raw):
        sock: socket.socket = raw
        try:
            if context is not None:
                raw.settimeout(HANDSHAKE_TIMEOUT_S)
                sock = context.wrap_socket(raw)
            size = struct.unpack("<Q", read(sock, 8))[0]
            if not 16 <= size <= 1 << 16:
                raise not_dask("it answered with something else")
            body = read(sock, size)
            count = struct.unpack_from("<Q", body)[0]
            first = struct.unpack_from("<Q", body, 8)[0] if 1 <= count <= 16 else 0
            hello = msgpack.unpackb(body[8 + 8 * count: 8 + 8 * count + first], raw=False) if first else None
        except ssl.SSLError as exc:
            if exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
                raise not_dask("it does not speak TLS (a scheduler started without --protocol tls is reached with "
                               "--scheduler tcp://...)") from None
            raise ConfigurationError(f"the TLS handshake with the Dask scheduler at {address} failed "
                                     f"({exc.reason or exc}): the scheduler's certificate and this machine's must "
                                     f"come from the same CA (the cluster's ca.pem, given here as {TLS_SETTINGS[0]})"
                                     ) from None
        except TimeoutError:
            raise not_dask(f"it sent nothing in {HANDSHAKE_TIMEOUT_S:g} s") from None
        except OSError:
            raise not_dask("it closed the connection") from None
        except (ValueError, struct.error, msgpack.UnpackException):
            raise not_dask("it answered with something else") from None
    if not isinstance(hello, dict) or "pickle-protocol" not in hello or "python" not in hello:
        raise not_dask("it answered with something else")


def _plain_tcp_warning(address: str) -> str | None:
    """A line for a ``tcp://`` address off this machine: neither encrypted nor authenticated."""
    scheme, host, _ = _split_address(address)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if scheme != "tcp" or loopback:
        return None
    return (f"vp3d-convert: warning: {address} is plain TCP: the videos and results cross the network unencrypted, and "
            "any machine that reaches the scheduler can join as a worker; use --scheduler tls:// (see the README)")


def connect(address: str) -> Any:
    """A Dask client of ``address`` that unpickles nothing from it (use it inside
    :func:`refuse_unpickling`), once the server there has greeted as a Dask scheduler does and,
    for ``tls://``, proved itself with the cluster's CA. Raises a :class:`ConfigurationError` that
    says how to fix what is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigurationError("--scheduler needs Dask's distributed package: pip install 'vp3d[cluster]' "
                                 "(on the workers too)") from None
    security, context = _security(address)
    _greeting(address, context)
    warning = _plain_tcp_warning(address)
    if warning:
        print(warning, file=sys.stderr)
    try:
        return _data_only_client()(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False, security=security,
                                   serializers=["msgpack"], deserializers=["msgpack"], direct_to_workers=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot reach the Dask scheduler at {address} ({exc}); start one with "
                                 f"`dask scheduler` and workers with `dask worker {address}`") from None
