"""TrailerTransport, KuboStore's HTTP/1.1 transport, against raw loopback sockets.

What the real node never does on cue: stall, cut a chunked body short, answer an upload
before reading it and hang up, speak TLS. Each server here is a socket on 127.0.0.1 serving
one scripted exchange in a thread, closed by the test.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medrecord_sdk.errors import ConfigurationError, StoreUnavailable
from medrecord_sdk.storage import KuboStore
from medrecord_sdk.storage._http import TRAILERS, TrailerTransport

Script = Callable[[socket.socket], None]


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
    return data


@pytest.fixture
def serve() -> Iterator[Callable[[Script], int]]:
    """Start a one-connection server running ``script``; returns its port."""
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(script: Script) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sockets.append(listener)

        def run() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                script(conn)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return int(listener.getsockname()[1])

    yield start
    for listener in sockets:
        listener.close()
    for thread in threads:
        thread.join(timeout=5)


def _client() -> httpx.Client:
    return httpx.Client(transport=TrailerTransport())


def test_trailers_are_kept(serve: Callable[[Script], int]) -> None:
    def script(conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Stream-Error\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Stream-Error: disk full\r\n\r\n"
        )

    port = serve(script)
    with _client() as client, client.stream("POST", f"http://127.0.0.1:{port}/x") as response:
        assert response.extensions[TRAILERS] == []  # not before the body is read
        assert response.read() == b"hello"
        assert response.extensions[TRAILERS] == [(b"x-stream-error", b"disk full")]


def test_a_stalled_answer_is_a_read_timeout(serve: Callable[[Script], int]) -> None:
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        _read_head(conn)
        done.wait(10)  # never answers while the client waits

    port = serve(script)
    store = KuboStore(f"http://127.0.0.1:{port}", timeout=0.3, retries=0)
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            store.version()
    finally:
        done.set()


def test_a_body_cut_short_is_a_protocol_error(serve: Callable[[Script], int]) -> None:
    def script(conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-part")

    port = serve(script)
    with _client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(f"http://127.0.0.1:{port}/x")


def test_an_answer_before_the_upload_is_read_is_not_lost(serve: Callable[[Script], int]) -> None:
    """A rate limiter answers 429 from the head alone and hangs up mid-upload."""

    def script(conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n"
            b"Connection: close\r\n\r\nbusy"
        )
        conn.shutdown(socket.SHUT_WR)

    port = serve(script)
    body = iter([b"x" * 65536] * 256)  # 16 MiB: far more than the socket buffers hold
    with _client() as client:
        response = client.post(f"http://127.0.0.1:{port}/api/v0/add", content=body)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_the_request_line_carries_the_query(serve: Callable[[Script], int]) -> None:
    heads: list[bytes] = []

    def script(conn: socket.socket) -> None:
        heads.append(_read_head(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port = serve(script)
    with _client() as client:
        client.post(f"http://127.0.0.1:{port}/api/v0/id", params={"arg": "a b"})
    assert heads[0].startswith(b"POST /api/v0/id?arg=a+b HTTP/1.1\r\n")
    assert b"connection: close" in heads[0].lower()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_trailers(serve: Callable[[Script], int], tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    def script(conn: socket.socket) -> None:
        with server_side.wrap_socket(conn, server_side=True) as tls:
            _read_head(tls)
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'f\r\n{"Version":"x"}\r\n0\r\nX-Stream-Error: tls too\r\n\r\n'
            )

    port = serve(script)
    trusting = ssl.create_default_context(cafile=str(cert))
    transport = TrailerTransport(verify=trusting)
    with httpx.Client(transport=transport) as client:
        response = client.post(f"https://localhost:{port}/api/v0/version")
    assert response.json() == {"Version": "x"}
    assert response.extensions[TRAILERS] == [(b"x-stream-error", b"tls too")]


def test_https_to_an_untrusted_certificate_fails_to_connect(
    serve: Callable[[Script], int], tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    def script(conn: socket.socket) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            server_side.wrap_socket(conn, server_side=True).close()

    port = serve(script)
    store = KuboStore(f"/dns4/localhost/tcp/{port}/https", retries=0)
    with pytest.raises(StoreUnavailable, match="TLS"):
        store.version()


def test_a_unix_address_cannot_take_a_client_of_ones_own() -> None:
    with pytest.raises(ConfigurationError, match="unix"):
        KuboStore("/unix/tmp/api.sock", client=httpx.Client())
