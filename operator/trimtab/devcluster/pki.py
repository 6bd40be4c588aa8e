"""Certificates and keys for a local cluster, made with the openssl command line.

One CA signs the apiserver's serving certificate and a client certificate per
identity. Controller-manager and scheduler get their own identities, so RBAC is as
real here as on any cluster; the admin user is in `system:masters`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess

from trimtab.devcluster import components

DAYS = "3650"
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's file stem, user name and groups."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS = (
    ClientIdentity("admin", "trimtab-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    # kwok plays every kubelet at once: the Node authorizer's per-node rules do not fit.
    ClientIdentity("kwok", "trimtab-kwok", ("system:masters",)),
)


def _subject(user: str, groups: tuple[str, ...]) -> str:
    return "/" + "/".join([*(f"O={g}" for g in groups), f"CN={user}"])


def apiserver_sans() -> list[str]:
    """Names and addresses clients may use to reach the apiserver."""
    service_ip = components.SERVICE_CIDR.split("/")[0].rsplit(".", 1)[0] + ".1"
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    return [*(f"DNS:{d}" for d in dns), "IP:127.0.0.1", f"IP:{service_ip}"]


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(pki: pathlib.Path) -> None:
    _run(
        "req",
        "-x509",
        *_EC,
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
        "-days",
        DAYS,
        "-subj",
        "/CN=trimtab-local-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )


def _make_leaf(pki: pathlib.Path, stem: str, *, subject: str, extensions: str) -> None:
    ext_file = pki / f"{stem}.ext"
    ext_file.write_text(extensions)
    csr = pki / f"{stem}.csr"
    _run(
        "req", "-new", *_EC, "-keyout", str(pki / f"{stem}.key"), "-out", str(csr), "-subj", subject
    )
    _run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(pki / "ca.crt"),
        "-CAkey",
        str(pki / "ca.key"),
        "-CAcreateserial",
        "-out",
        str(pki / f"{stem}.crt"),
        "-days",
        DAYS,
        "-extfile",
        str(ext_file),
    )
    csr.unlink()
    ext_file.unlink()


def _make_service_account_keys(pki: pathlib.Path) -> None:
    _run(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(pki / "sa.key"),
    )
    _run("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def ensure_pki(pki: pathlib.Path) -> None:
    """Create whatever certificates and keys are missing; existing ones are kept."""
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        _make_ca(pki)
    if not (pki / "apiserver.crt").exists():
        sans = ",".join(apiserver_sans())
        _make_leaf(
            pki,
            "apiserver",
            subject="/CN=kube-apiserver",
            extensions=f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n",
        )
    for client in CLIENTS:
        if not (pki / f"{client.stem}.crt").exists():
            _make_leaf(
                pki,
                client.stem,
                subject=_subject(client.user, client.groups),
                extensions="extendedKeyUsage=clientAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n",
            )
    if not (pki / "sa.key").exists():
        _make_service_account_keys(pki)
