"""Test certificates: a CA made on the spot, the certificates it signs, and a TLS pair for
127.0.0.1 and localhost. Used by the registries (:mod:`tests.registry`) and the TLS tests.

``cryptography`` is imported when a CA is made; a test that may run without it skips first
(``pytest.importorskip``).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.httpserver import HttpServer

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey


@dataclass(frozen=True)
class TestCa:
    """A self-signed CA (EC P-256, a day long) that signs leaf certificates."""

    key: EllipticCurvePrivateKey
    name: x509.Name
    cert: x509.Certificate
    now: datetime.datetime

    __test__ = False

    @classmethod
    def create(cls, common_name: str) -> TestCa:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        return cls(key=key, name=name, cert=cert, now=now)

    def leaf(
        self, name: str, public_key: object, extras: list[x509.ExtensionType]
    ) -> x509.Certificate:
        """A certificate for ``name`` that this CA signs, with ``extras`` (not critical)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(minutes=5))
            .not_valid_after(self.now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        for extension in extras:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def write_server_pair(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write this CA and a TLS pair it signs for 127.0.0.1 and localhost as PEM files in
        ``directory``: (ca.pem, cert.pem, key.pem)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.leaf(
            "127.0.0.1",
            key.public_key(),
            [
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            ],
        )
        pem = serialization.Encoding.PEM
        ca_path, cert_path, key_path = (
            directory / "ca.pem",
            directory / "cert.pem",
            directory / "key.pem",
        )
        ca_path.write_bytes(self.cert.public_bytes(pem))
        cert_path.write_bytes(cert.public_bytes(pem))
        key_path.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return ca_path, cert_path, key_path


@contextlib.contextmanager
def https_server(directory: Path) -> Iterator[tuple[HttpServer, Path]]:
    """A loopback :class:`HttpServer` over TLS with a certificate from a new private CA, and
    that CA's PEM file (in ``directory``, made here); skips without ``cryptography``."""
    import pytest

    pytest.importorskip("cryptography.x509")
    directory.mkdir()
    ca, cert, key = TestCa.create("pylock test corporate CA").write_server_pair(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with HttpServer(tls=context) as server:
        yield server, ca
