"""TLS as the DSQL engine does it: ``sslmode=verify-full`` against an explicit root bundle.

A throwaway PostgreSQL (the embedded wheel's binaries, data in a temporary folder) sits
behind a TLS endpoint whose certificate, for ``db.bank.test``, is signed by a CA made
here. With no ``SSL_CERT_FILE``/``SSL_CERT_DIR`` in the environment, libpq (psycopg-binary's,
the one Lambda runs) connects when given that CA as ``sslrootcert`` and refuses a wrong CA
or a wrong host name: what makes the shipped bundle
(``bank.adapters.database.DSQL_ROOT_CERTS``) enough on Lambda and on laptops.

The wheel's PostgreSQL is built without OpenSSL (``ssl = on`` fails with "SSL is not
supported by this build"), so TLS is terminated in front of it by ``TlsTerminator``, which
speaks PostgreSQL's side of both negotiations libpq uses: the ``SSLRequest`` preamble and,
as the DSQL engine asks for with libpq 17+, direct TLS with ALPN ``postgresql``. The
handshake, the chain and the host name check are libpq's and OpenSSL's own.
"""

from __future__ import annotations

import datetime as dt
import select
import socket
import ssl
import struct
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bank.adapters.database import DSQL_ROOT_CERTS
from bank.kit.embedded import EmbeddedPostgres, delete_os_user

HOST = "db.bank.test"

#: SHA-256 fingerprints of the Amazon Trust Services roots, as published on
#: https://www.amazontrust.com/repository/.
AMAZON_ROOTS = {
    "Amazon Root CA 1": "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
    "Amazon Root CA 2": "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
    "Amazon Root CA 3": "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
    "Amazon Root CA 4": "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
    "Starfield Services Root Certificate Authority - G2":
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_cert(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                     host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return _pem(cert), key_pem


SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)
TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a ClientHello


class TlsTerminator:
    """PostgreSQL's TLS, in front of a server built without it: 127.0.0.1, a free port.

    Each client gets a thread: it answers the preamble, completes the TLS handshake with
    the given certificate, then relays bytes to the plain server until either side closes.
    """

    def __init__(self, backend_port: int, cert_file: Path, key_file: Path):
        self.backend_port = backend_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.context.set_alpn_protocols(["postgresql"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        with client:
            try:
                tls = self._handshake(client)
            except (OSError, ValueError):
                return  # e.g. the client refused our certificate: what the tests expect
            with tls, socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
                self._relay(tls, backend)

    def _handshake(self, client: socket.socket) -> ssl.SSLSocket:
        while client.recv(1, socket.MSG_PEEK)[:1] != bytes([TLS_HANDSHAKE]):
            preamble = _read_exactly(client, 8)
            if preamble == GSSENC_REQUEST:
                client.sendall(b"N")  # no GSSAPI encryption here; the client goes on
            elif preamble == SSL_REQUEST:
                client.sendall(b"S")
                break
            else:
                raise ValueError("not a TLS client")
        return self.context.wrap_socket(client, server_side=True)

    @staticmethod
    def _relay(tls: ssl.SSLSocket, backend: socket.socket) -> None:
        peers = {tls: backend, backend: tls}
        while True:
            ready, _, _ = select.select(list(peers), [], [], 10)
            if not ready:
                return
            for source in ready:
                data = source.recv(65536)
                if not data:
                    return
                while isinstance(source, ssl.SSLSocket) and source.pending():
                    data += source.recv(source.pending())
                peers[source].sendall(data)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("closed during the preamble")
        data += chunk
    return data


@pytest.fixture(scope="module")
def tls_server():
    """A PostgreSQL reached over TLS with a certificate for HOST; yields (port, CA file).

    Its folder is not under pytest's ``/tmp/pytest-of-<user>``: every pytest session
    tightens that to 0700 when it starts, and one started meanwhile (another checkout on
    the same machine) would lock the server's unprivileged user (as root) out of its data.
    """
    with tempfile.TemporaryDirectory(prefix="bank-tls-") as name:
        yield from _serve_tls(Path(name))


def _serve_tls(tmp: Path):
    ca, ca_key = make_ca("bank test CA")
    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(_pem(ca))
    cert, key = make_server_cert(ca, ca_key, HOST)
    (tmp / "server.crt").write_bytes(cert)
    (tmp / "server.key").write_bytes(key)
    server = EmbeddedPostgres(tmp / "data")
    status = server.start()
    assert status.port is not None
    terminator = TlsTerminator(status.port, tmp / "server.crt", tmp / "server.key")
    try:
        yield terminator.port, ca_file, server.passfile
    finally:
        terminator.close()
        server.stop()
        if server.os_user is not None:
            delete_os_user(server.os_user)


@pytest.fixture()
def no_ca_environment(monkeypatch):
    """Nothing in the environment points OpenSSL at a CA store."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PGSSLROOTCERT", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)


def connect(port: int, rootcert: Path, passfile: Path, host: str = HOST,
            negotiation: str = "postgres"):
    return psycopg.connect(
        host=host, hostaddr="127.0.0.1", port=port, user="postgres", dbname="postgres",
        passfile=str(passfile),
        sslmode="verify-full", sslrootcert=str(rootcert), sslnegotiation=negotiation,
        connect_timeout=5, gssencmode="disable",
    )


# The DSQL engine asks for direct TLS negotiation when libpq is 17 or newer.
NEGOTIATIONS = ["postgres", "direct"] if psycopg.pq.version() >= 170000 else ["postgres"]


@pytest.mark.parametrize("negotiation", NEGOTIATIONS)
def test_verify_full_connects_with_the_right_ca(tls_server, no_ca_environment, negotiation):
    port, ca_file, passfile = tls_server
    with connect(port, ca_file, passfile, negotiation=negotiation) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the server behind answers


def test_verify_full_refuses_a_wrong_ca(tls_server, no_ca_environment, tmp_path):
    port, _, passfile = tls_server
    other, _ = make_ca("some other CA")
    wrong = tmp_path / "other-ca.pem"
    wrong.write_bytes(_pem(other))
    for rootcert in (wrong, DSQL_ROOT_CERTS):  # the Amazon roots did not sign this server
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            connect(port, rootcert, passfile)


def test_verify_full_refuses_a_wrong_host_name(tls_server, no_ca_environment):
    port, ca_file, passfile = tls_server
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        connect(port, ca_file, passfile, host="other.bank.test")


# Starfield Services Root G2 (2009) has serial number 0, which RFC 5280 later disallowed.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_shipped_bundle_holds_the_amazon_trust_services_roots():
    assert DSQL_ROOT_CERTS.is_file()
    certs = x509.load_pem_x509_certificates(DSQL_ROOT_CERTS.read_bytes())
    found = {
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value:
            cert.fingerprint(hashes.SHA256()).hex()
        for cert in certs
    }
    assert found == AMAZON_ROOTS
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    for cert in certs:
        assert cert.subject == cert.issuer  # roots: self-signed
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_after_utc > soon
