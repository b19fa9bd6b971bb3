"""Certificates made on the spot for TLS tests (the ``cryptography`` package; no network, no files
checked in): a test CA, a server certificate for ``127.0.0.1`` and ``localhost`` signed by it,
and a client CA with one client certificate for mutual TLS.

``python -m tests.support.certs DIR`` writes them to DIR and prints their paths and the server
key's SPKI hash as JSON (the browser tests start Chromium with
``--ignore-certificate-errors-spki-list=<hash>``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestCerts:
    ca: str  # the CA that signed the server certificate (clients trust it)
    cert: str  # server certificate chain (PEM)
    key: str  # server private key (PEM)
    client_ca: str  # the CA that signs client certificates (EDGE_TLS_CLIENT_CA_FILE)
    client_cert: str
    client_key: str
    spki: str  # base64 SHA-256 of the server key's SubjectPublicKeyInfo


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    cn: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make(folder: Path) -> TestCerts:
    """Write a fresh CA, server and client certificates under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("tickmesh test CA")
    key, cert = _leaf("127.0.0.1", ca_key, ca, server=True)
    cca_key, cca = _ca("tickmesh test client CA")
    ckey, ccert = _leaf("test-client", cca_key, cca, server=False)
    pem = serialization.Encoding.PEM
    files = {
        "ca": ca.public_bytes(pem),
        "cert": cert.public_bytes(pem) + ca.public_bytes(pem),
        "key": _pem_key(key),
        "client_ca": cca.public_bytes(pem),
        "client_cert": ccert.public_bytes(pem),
        "client_key": _pem_key(ckey),
    }
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = str(path)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return TestCerts(**paths, spki=base64.b64encode(hashlib.sha256(spki).digest()).decode())


if __name__ == "__main__":
    print(json.dumps(asdict(make(Path(sys.argv[1])))))
