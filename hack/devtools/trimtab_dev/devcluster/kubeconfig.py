"""Kubeconfig documents for the admin user and each control-plane component."""

from __future__ import annotations

import pathlib
from typing import Any


def kubeconfig(
    *, server: str, ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path, cluster_name: str
) -> dict[str, Any]:
    """A kubeconfig that authenticates with a client certificate; files referenced by path."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": cluster_name,
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
    }
