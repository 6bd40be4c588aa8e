"""Certificates and keys for a local cluster, made with the openssl command line.

One CA signs the serving certificates (the apiserver's, each real kubelet's) and a
client certificate per identity. Controller-manager, scheduler, each real kubelet
(`system:node:<name>` in `system:nodes`, so the Node authorizer confines it to its own
node), kube-proxy and the apiserver's client for kubelets get their own identities, so
RBAC is as real here as on any cluster; the admin user is in `system:masters`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess

from trimtab_dev.devcluster import addresses

DAYS = "3650"
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's file stem, user name and groups."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ServingIdentity:
    """A serving certificate's file stem, common name and subject alternative names."""

    stem: str
    common_name: str
    sans: tuple[str, ...]


# The apiserver's identity towards kubelets; bound to system:kubelet-api-admin at `up`.
KUBELET_CLIENT = ClientIdentity("kube-apiserver-kubelet-client", "kube-apiserver-kubelet-client")
# The user the built-in system:node-proxier ClusterRoleBinding names.
KUBE_PROXY = ClientIdentity("kube-proxy", "system:kube-proxy")

CLIENTS = (
    ClientIdentity("admin", "trimtab-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    # kwok plays every kubelet at once: the Node authorizer's per-node rules do not fit.
    ClientIdentity("kwok", "trimtab-kwok", ("system:masters",)),
)


def _subject(user: str, groups: tuple[str, ...]) -> str:
    return "/" + "/".join([*(f"O={g}" for g in groups), f"CN={user}"])


def node_client(node: str) -> ClientIdentity:
    """A kubelet's client identity: what the Node authorizer recognises as that node."""
    return ClientIdentity(f"node-{node}", f"system:node:{node}", ("system:nodes",))


def node_serving(node: str, address: str) -> ServingIdentity:
    return ServingIdentity(f"node-{node}-serving", node, (f"DNS:{node}", f"IP:{address}"))


def apiserver_sans(host_address: str) -> tuple[str, ...]:
    """Names and addresses clients may use to reach the apiserver: loopback, the host's
    address on the real nodes' bridge, and the `kubernetes` Service."""
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    ips = ["127.0.0.1", host_address, addresses.SERVICE_IP]
    return (*(f"DNS:{d}" for d in dns), *(f"IP:{ip}" for ip in ips))


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


_CLIENT_EXT = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
_SERVER_EXT = "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"


def _ensure_serving(pki: pathlib.Path, ident: ServingIdentity) -> None:
    """Issue `ident`'s certificate if missing or if its names changed (kept beside it)."""
    names = ",".join(ident.sans)
    record = pki / f"{ident.stem}.sans"
    if (pki / f"{ident.stem}.crt").exists() and record.exists() and record.read_text() == names:
        return
    ext = f"subjectAltName={names}\n{_SERVER_EXT}"
    _make_leaf(pki, ident.stem, subject=f"/CN={ident.common_name}", extensions=ext)
    record.write_text(names)


def ensure_pki(
    pki: pathlib.Path,
    *,
    host_address: str,
    clients: tuple[ClientIdentity, ...] = CLIENTS,
    servers: tuple[ServingIdentity, ...] = (),
) -> None:
    """Create whatever certificates and keys are missing; existing ones are kept."""
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        _make_ca(pki)
    apiserver = ServingIdentity("apiserver", "kube-apiserver", apiserver_sans(host_address))
    for ident in (apiserver, *servers):
        _ensure_serving(pki, ident)
    for client in clients:
        if not (pki / f"{client.stem}.crt").exists():
            subject = _subject(client.user, client.groups)
            _make_leaf(pki, client.stem, subject=subject, extensions=_CLIENT_EXT)
    if not (pki / "sa.key").exists():
        _make_service_account_keys(pki)
