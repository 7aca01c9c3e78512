"""Test helpers: a blocking-socket HTTP server in threads that sends exactly the bytes a test needs
(well formed, malformed, slow or cut short), a forward proxy, and TLS certificates made at test time.

The servers serve tests on asyncio and trio alike; they record the raw requests and the accepted TCP
connections, so tests can assert what went over the wire.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx2

# --- a threaded raw-socket HTTP server ----------------------------------------------------------

Handler = Callable[[socket.socket, bytes], None]
"""``handler(conn, request)``: write any bytes to ``conn`` (the request is already read off it)."""

_local = threading.local()


class RawServer:
    """A TCP server on ``host`` port 0, one thread per connection, independent of any event loop.

    For each request read off a connection (head plus ``Content-Length`` or chunked body) it records
    the raw bytes in :attr:`requests` and calls ``handler(conn, request)``; then it reads the next
    request on that connection until the client closes it or the handler hangs up (:func:`hang_up`).
    With ``read_requests=False`` the handler gets the fresh connection and ``b""``, and owns it.
    :attr:`accepted` counts TCP connections, :attr:`max_open` the most open at once. ``close()`` (or
    leaving the ``with`` block) stops :func:`pause` in handlers, hangs up every connection, joins every
    thread, and re-raises the first exception a handler raised other than ``OSError``.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        read_requests: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.handler: Handler = handler or replies(ok())
        self.read_requests = read_requests
        self.ssl_context = ssl_context
        self.requests: list[bytes] = []
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._errors: list[BaseException] = []
        self._sockets: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family, backlog=128)
        self.port: int = self._listener.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="raw-server-accept", daemon=True)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):  # wake the blocked accept()
            socket.create_connection(self._listener.getsockname()[:2], timeout=1).close()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            hang_up(sock)
        for thread in self._threads:
            thread.join(5)
        if self._errors:
            raise self._errors[0]

    def wait_all_closed(self, timeout: float = 2.0) -> bool:
        """Block until every accepted connection has ended (True), or ``timeout`` passes (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.open == 0, timeout)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self._sockets[number] = conn
            thread = threading.Thread(target=self._serve, args=(number, conn), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, number: int, conn: socket.socket) -> None:
        _local.server = self
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._sockets[number] = conn
            if not self.read_requests:
                self.handler(conn, b"")
                return
            buffer = bytearray()
            while not self.stopping.is_set():
                request = read_message(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                self.handler(conn, request)
        except OSError:
            pass  # the client went away, or the server is stopping
        except BaseException as exc:
            with self._lock:
                self._errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self.open -= 1
                self._sockets.pop(number, None)
                self._lock.notify_all()


def pause(seconds: float) -> None:
    """Sleep in a handler; returns at once when the server is closing."""
    _local.server.stopping.wait(seconds)


def hang_up(conn: socket.socket) -> None:
    """Close both directions of ``conn`` now (the client reads EOF); works on TLS sockets too."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


def read_message(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP/1.1 message (head + Content-Length or chunked body) off ``sock``; None at EOF."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head = bytes(buffer[: end + 4])
    del buffer[: end + 4]
    headers = parse_message(head)[1]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            line = _read_line(sock, buffer)
            body += line
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := _read_line(sock, buffer)) != b"\r\n":
                    body += trailer
                body += b"\r\n"
                return head + bytes(body)
            body += _read_exact(sock, buffer, size + 2)
    return head + _read_exact(sock, buffer, int(headers.get("content-length", "0")))


def _read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    while (end := buffer.find(b"\r\n")) < 0:
        _receive_more(sock, buffer)
    line = bytes(buffer[: end + 2])
    del buffer[: end + 2]
    return line


def _read_exact(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        _receive_more(sock, buffer)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def _receive_more(sock: socket.socket, buffer: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the peer closed the connection mid-message")
    buffer += data


def parse_message(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """``(first line, {lower-case name: value}, body)`` of a raw HTTP message."""
    head, _, body = raw.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, body


# --- responses and handlers ---------------------------------------------------------------------


def ok(body: bytes = b"ok", *headers: str) -> bytes:
    """A ``200`` with a ``Content-Length`` body and optional extra header lines."""
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def chunks(*parts: bytes) -> bytes:
    """``parts`` as a chunked body, terminator included."""
    return b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def replies(*answers: bytes | Handler) -> Handler:
    """The n-th request (over all connections) gets ``answers[n]``; the last answer repeats."""
    counter = itertools.count()

    def handler(conn: socket.socket, request: bytes) -> None:
        answer = answers[min(next(counter), len(answers) - 1)]
        if isinstance(answer, bytes):
            conn.sendall(answer)
        else:
            answer(conn, request)

    return handler


def then_hang_up(data: bytes = b"") -> Handler:
    """Send ``data`` (maybe nothing), then close the connection."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        hang_up(conn)

    return handler


def stall_after(data: bytes = b"") -> Handler:
    """Send ``data``, then send nothing more until the server closes (the connection stays open)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        pause(30)

    return handler


class ForwardingProxy(RawServer):
    """A plain HTTP forward proxy: records absolute-form request lines, relays to the origin."""

    def __init__(self) -> None:
        super().__init__(self._forward)
        self.request_lines: list[str] = []

    def _forward(self, conn: socket.socket, request: bytes) -> None:
        line, _, rest = request.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ")
        self.request_lines.append(line.decode("latin-1"))
        origin = httpx2.URL(target)
        assert origin.scheme == "http" and origin.host and origin.port
        with socket.create_connection((origin.host, origin.port), timeout=5) as upstream:
            upstream.sendall(f"{method} {origin.raw_path.decode()} {version}\r\n".encode() + rest)
            response = read_message(upstream, bytearray())
        assert response is not None
        conn.sendall(response)


# --- TLS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path) -> TLSFiles:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate, made now."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentkit test CA")])

    def builder(subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    usage = {"digital_signature": False, "content_commitment": False, "key_encipherment": False}
    usage |= {"data_encipherment": False, "key_agreement": False, "encipher_only": False}
    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(key_cert_sign=True, crl_sign=True, decipher_only=False, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)
    issuer = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    server_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for name, purpose, names in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, server_names),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("agentkit-test-client")]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(issuer, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write(name, cert, key)
    return TLSFiles(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


def server_tls(files: TLSFiles, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """The server side: its certificate, and the test CA's clients required when asked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files.ca)
    return context
