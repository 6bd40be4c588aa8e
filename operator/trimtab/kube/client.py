"""Connecting to the apiserver: in-cluster service account first, then kubeconfig.

Every call has a deadline. The generated client waits forever by default, so one
connection the network dropped silently (a NAT entry gone, a half-open socket) would
hang its caller for good: a standby polling the leader Lease would never take over, a
handler's thread would never come back.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

POOL_SIZE = 32
REQUEST_SECONDS = 30.0  # no single API call of the operator's takes longer when healthy


class NoClusterError(RuntimeError):
    """Neither an in-cluster service account nor a kubeconfig was found."""


class DeadlineApiClient(k8s_client.ApiClient):
    """An API client whose calls without a timeout of their own get `request_seconds`;
    discovery, the dynamic client and raw calls all pass through `call_api`."""

    def __init__(
        self, configuration: k8s_client.Configuration, *, request_seconds: float = REQUEST_SECONDS
    ) -> None:
        super().__init__(configuration)
        self.request_seconds = request_seconds

    def call_api(
        self,
        method: str,
        url: str,
        header_params: dict[str, str] | None = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        return super().call_api(
            method,
            url,
            header_params=header_params,
            body=body,
            post_params=post_params,
            _request_timeout=_request_timeout or self.request_seconds,
        )


def connect(
    kubeconfig: str | None = None, *, request_seconds: float = REQUEST_SECONDS
) -> k8s_client.ApiClient:
    """An API client for `kubeconfig`, or for the pod's service account when running
    in a cluster, or for $KUBECONFIG / ~/.kube/config otherwise; no call of it waits
    longer than `request_seconds`."""
    configuration = k8s_client.Configuration()
    # Callers run blocking calls from a thread pool; one connection per thread, not 10.
    configuration.connection_pool_maxsize = POOL_SIZE
    try:
        if kubeconfig is None:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
                return DeadlineApiClient(configuration, request_seconds=request_seconds)
            except ConfigException:
                pass
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except (ConfigException, FileNotFoundError) as exc:
        raise NoClusterError(f"no Kubernetes configuration found: {exc}") from exc
    return DeadlineApiClient(configuration, request_seconds=request_seconds)
