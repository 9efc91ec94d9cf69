"""The local endpoint's certificates: a CA made once, and a server certificate per host name.

The CA lives next to the embedded server's data (``.bank/endpoint/``): ``ca.pem`` (the
certificate, which clients trust as ``sslrootcert``) and ``ca-key.pem`` (its key, 0600).
It is made the first time it is needed and kept, so a root bundle handed to a client stays
good across restarts. The server certificate is made anew at each start, for the
DSQL-style host name the endpoint answers to, signed by that CA, and loaded into the TLS
context; its files (the key 0600) exist only while they are loaded.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "bank local DSQL endpoint CA"
CA_DAYS = 3650
SERVER_DAYS = 365


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole, with ``mode`` from the start (never briefly readable by others)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``folder`` (``ca.pem``, ``ca-key.pem``), made if there is none yet."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    cert_file, key_file = folder / "ca.pem", folder / "ca-key.pem"
    if cert_file.exists() and key_file.exists():
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
            return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    write_file(key_file, _key_pem(key), 0o600)
    write_file(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def server_context(folder: Path, host: str) -> ssl.SSLContext:
    """A TLS server context with a new certificate for ``host``, signed by ``folder``'s CA
    (made if needed). It offers ALPN ``postgresql``, which libpq's direct TLS requires."""
    ca, ca_key = ensure_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["postgresql"])
    # Files of this process only, removed once loaded: two endpoints may share the folder.
    chain, key_file = folder / f"server-{os.getpid()}.pem", folder / f"server-{os.getpid()}.key"
    try:
        write_file(key_file, _key_pem(key), 0o600)
        write_file(chain, cert.public_bytes(serialization.Encoding.PEM), 0o600)
        context.load_cert_chain(chain, key_file)
    finally:
        key_file.unlink(missing_ok=True)
        chain.unlink(missing_ok=True)
    return context
