"""Connecting to the apiserver: in-cluster service account first, then kubeconfig."""

from __future__ import annotations

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

POOL_SIZE = 32


class NoClusterError(RuntimeError):
    """Neither an in-cluster service account nor a kubeconfig was found."""


def connect(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """An API client for `kubeconfig`, or for the pod's service account when running
    in a cluster, or for $KUBECONFIG / ~/.kube/config otherwise."""
    configuration = k8s_client.Configuration()
    # Callers run blocking calls from a thread pool; one connection per thread, not 10.
    configuration.connection_pool_maxsize = POOL_SIZE
    try:
        if kubeconfig is None:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
                return k8s_client.ApiClient(configuration)
            except ConfigException:
                pass
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except (ConfigException, FileNotFoundError) as exc:
        raise NoClusterError(f"no Kubernetes configuration found: {exc}") from exc
    return k8s_client.ApiClient(configuration)
