"""Certificates for HTTPS tests, made with the openssl command line (`from tlskit import make_ca, make_cert`).

``make_ca(folder)`` is a test CA (its PEM is what a client's CA bundle holds); ``make_cert(folder, ca,
san="IP:127.0.0.1")`` a server certificate signed by it, valid now or, with ``expired=True``, for one day
in 2020; ``self_signed(folder, san)`` a lone self-signed certificate (its own CA). The README shows the
one-line openssl command users run for ``ks3sync local-server --tls-cert/--tls-key``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def self_signed(folder: Path, san: str = "IP:127.0.0.1", name: str = "server") -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
        "-days",
        "2",
        "-subj",
        "/CN=ks3sync-test",
        "-addext",
        f"subjectAltName={san}",
        cwd=folder,
    )
    return pair


def make_ca(folder: Path) -> Pair:
    return self_signed(folder, "DNS:ks3sync-test-ca", name="ca")


def make_cert(
    folder: Path, ca: Pair, san: str = "IP:127.0.0.1", *, expired: bool = False, name: str = "leaf"
) -> Pair:
    """A certificate for ``san`` signed by ``ca`` (``openssl ca``: it can date a certificate in the past)."""
    work = folder / f"{name}-ca-state"
    work.mkdir(parents=True, exist_ok=True)
    (work / "index.txt").write_text("")
    (work / "serial").write_text("01\n")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = any\nx509_extensions = leaf\n[any]\ncommonName = supplied\n"
        f"[leaf]\nsubjectAltName = {san}\n"
    )
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    csr = work / "leaf.csr"
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(pair.key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
        cwd=work,
    )
    dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired else ["-days", "2"]
    _openssl(
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-cert",
        str(ca.cert),
        "-keyfile",
        str(ca.key),
        "-in",
        str(csr),
        "-out",
        str(pair.cert),
        "-notext",
        *dates,
        cwd=work,
    )
    return pair
