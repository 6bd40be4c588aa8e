"""Worker processes for the simulated nodes' pods: one `trimtab worker run` per Running pod.

kwok marks pods Running but runs no containers, so on the local cluster nobody would
serve a pool's queue from a simulated node. The supervisor plays the container
runtime's part for worker pods on kwok's nodes only (pods on the real nodes run as
containers under their kubelet): it keeps exactly one local process per Running worker
pod, started with that pod's command, arguments and environment (Secret references
resolved, and the tool-secrets volume written to a folder, as the kubelet would), and
stops the process when the pod stops running. It follows the operator's scaling as a
kubelet follows the scheduler, so what it shows is the product's own behaviour.

Level-based like everything else: each pass lists the pods, `plan` compares them with the
live processes, and the difference is applied. A restart of the supervisor adopts
nothing and starts afresh; the workers' at-least-once delivery covers the gap.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trimtab.kube import objects
from trimtab.reconcile import naming
from trimtab.reconcile.agentworkflow import secrets as tool_secrets
from trimtab.worker import settings
from trimtab_dev.devcluster import components

log = logging.getLogger(__name__)
SecretReader = Callable[[str, str, str], str | None]  # namespace, name, key -> value


@dataclasses.dataclass(frozen=True)
class WorkerPod:
    """What a process needs from its pod: identity, command line and environment."""

    uid: str
    namespace: str
    name: str
    pool: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    # The tool-secrets volume's files (path below it, content), as the kubelet projects it.
    tool_secret_files: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Plan:
    start: tuple[WorkerPod, ...]
    stop: tuple[str, ...]  # pod uids


def is_serving(pod: Mapping[str, Any]) -> bool:
    """A pod whose worker should be running: Running and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return status.get("phase") == "Running" and not meta.get("deletionTimestamp")


def simulated(nodes: Sequence[Mapping[str, Any]]) -> set[str]:
    """The names of the nodes kwok manages: the only ones whose pods need a process here."""
    return {
        n["metadata"]["name"]
        for n in nodes
        if ((n["metadata"].get("annotations") or {}).get(components.KWOK_NODE_ANNOTATION))
        == components.KWOK_NODE_ANNOTATION_VALUE
    }


def plan(pods: list[WorkerPod], running: set[str]) -> Plan:
    """Start a process for each pod without one; stop each process whose pod is gone."""
    wanted = {p.uid: p for p in pods}
    start = tuple(p for uid, p in sorted(wanted.items()) if uid not in running)
    stop = tuple(sorted(running - set(wanted)))
    return Plan(start=start, stop=stop)


_LABEL_FIELD = re.compile(r"metadata\.labels\['([^']+)'\]")


def _env_value(
    ns: str,
    pod_name: str,
    entry: Mapping[str, Any],
    secrets: SecretReader,
    labels: Mapping[str, str],
) -> str:
    if "value" in entry:
        return str(entry.get("value") or "")
    source = entry.get("valueFrom") or {}
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        value = secrets(ns, ref["name"], ref["key"])
        if value is None and not ref.get("optional"):
            raise LookupError(f"pod {ns}/{pod_name}: secret {ref['name']}/{ref['key']} not found")
        return value or ""
    field = (source.get("fieldRef") or {}).get("fieldPath")
    if field == "metadata.name":
        return pod_name
    if field == "metadata.namespace":
        return ns
    if field and (label := _LABEL_FIELD.fullmatch(field)):
        return labels.get(label[1], "")  # the kubelet's: empty for a missing label
    raise LookupError(f"pod {ns}/{pod_name}: unsupported env source for {entry.get('name')}")


def resolve_env(
    ns: str,
    pod_name: str,
    env: list[Mapping[str, Any]],
    secrets: SecretReader,
    labels: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """A container's variables as the kubelet sets them: values, Secret keys, and the
    pod's name, namespace and labels."""
    return [(e["name"], _env_value(ns, pod_name, e, secrets, labels or {})) for e in env]


def projected_secret_files(
    pod: Mapping[str, Any], volume: str, secrets: SecretReader
) -> list[tuple[str, str]]:
    """The files of the pod's projected volume `volume` (path, content), as the kubelet
    writes them: an optional source whose Secret or key is missing writes nothing."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    out: list[tuple[str, str]] = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("name") != volume:
            continue
        for source in (vol.get("projected") or {}).get("sources") or []:
            ref = source.get("secret") or {}
            for item in ref.get("items") or []:
                value = secrets(ns, ref["name"], item["key"])
                if value is None and not ref.get("optional"):
                    raise LookupError(f"pod {ns}/{name}: secret {ref['name']} not found")
                if value is not None:
                    out.append((item["path"], value))
    return out


def secret_reader(store: objects.ObjectStore) -> SecretReader:
    """Reads a Secret key through the API, as the kubelet does for a pod's env."""

    def read(namespace: str, name: str, key: str) -> str | None:
        secret = store.get("v1", "Secret", name, namespace)
        data = (secret or {}).get("data") or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    return read


def _local_args(args: list[str]) -> list[str]:
    """The container's arguments with the metrics port switched off: every pod declares
    the same port, which local processes sharing one loopback cannot all bind."""
    out = list(args)
    if "--metrics-port" in out:
        out[out.index("--metrics-port") + 1] = "0"
    return out


def worker_pod(pod: Mapping[str, Any], secrets: SecretReader) -> WorkerPod:
    """The process description for one worker pod, resolved the way a kubelet would."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    container = pod["spec"]["containers"][0]
    env = resolve_env(ns, name, container.get("env") or [], secrets, meta.get("labels") or {})
    env.append(("HOSTNAME", name))  # what Kubernetes sets; workers name their consumer after it
    command = list(container.get("command") or [])
    if command[:1] == ["trimtab"]:
        command = [sys.executable, "-m", "trimtab", *command[1:]]
    return WorkerPod(
        uid=meta["uid"],
        namespace=ns,
        name=name,
        pool=meta["labels"][naming.POOL_LABEL],
        argv=(*command, *_local_args(list(container.get("args") or []))),
        env=tuple(env),
        tool_secret_files=tuple(projected_secret_files(pod, tool_secrets.VOLUME, secrets)),
    )


class Supervisor:
    """Keeps one worker process per serving pod of the watched namespace (or all)."""

    def __init__(
        self, store: objects.ObjectStore, logs: pathlib.Path, namespace: str | None = None
    ) -> None:
        self.store, self.logs, self.namespace = store, logs, namespace
        self.procs: dict[str, tuple[WorkerPod, subprocess.Popen[bytes]]] = {}
        self._stopping: list[subprocess.Popen[bytes]] = []
        self._warned: set[str] = set()
        self._resolved: dict[str, WorkerPod] = {}  # by pod uid
        self._secret = secret_reader(store)

    def serving_pods(self) -> list[WorkerPod]:
        pods = self.store.list(
            "v1", "Pod", namespace=self.namespace, label_selector=naming.POOL_LABEL
        )
        kwok = simulated(self.store.list("v1", "Node"))
        serving = {
            p["metadata"]["uid"]: p
            for p in pods
            if is_serving(p) and (p.get("spec") or {}).get("nodeName") in kwok
        }
        for gone in set(self._resolved) - set(serving):
            del self._resolved[gone]
        for uid, pod in serving.items():
            if uid in self._resolved:
                continue  # a pod's spec is fixed: resolve it (and read its Secrets) once
            try:
                self._resolved[uid] = worker_pod(pod, self._secret)
            except LookupError as exc:  # like a kubelet's CreateContainerConfigError
                if uid not in self._warned:  # once per pod, not per pass
                    self._warned.add(uid)
                    log.warning("%s; not started until it can be", exc)
        return list(self._resolved.values())

    def sync(self) -> Plan:
        """One pass: reap exited processes, then start and stop to match the pods."""
        for uid, (_, proc) in list(self.procs.items()):
            if proc.poll() is not None:
                del self.procs[uid]  # exited: started again below while its pod runs
        decided = plan(self.serving_pods(), set(self.procs))
        for uid in decided.stop:
            self._stop(uid)
        for pod in decided.start:
            self._start(pod)
        return decided

    def _mounted(self, pod: WorkerPod) -> dict[str, str]:
        """The pod's tool-secrets volume as a folder, and the variable naming it."""
        if not pod.tool_secret_files:
            return {}
        root = self.logs / "volumes" / pod.uid
        for rel, content in pod.tool_secret_files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(content)
            (root / rel).chmod(0o600)
        return {settings.TOOL_SECRETS_DIR_ENV: str(root)}

    def _start(self, pod: WorkerPod) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{pod.namespace}_{pod.name}.log", "ab") as out:
            proc = subprocess.Popen(
                list(pod.argv),
                env={**os.environ, **dict(pod.env), **self._mounted(pod)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[pod.uid] = (pod, proc)
        log.info("started worker for pod %s/%s (pid %d)", pod.namespace, pod.name, proc.pid)

    def _stop(self, uid: str) -> None:
        pod, proc = self.procs.pop(uid)
        proc.send_signal(signal.SIGTERM)  # the worker finishes its in-flight tasks
        log.info("stopping worker for pod %s/%s (pid %d)", pod.namespace, pod.name, proc.pid)
        self._stopping.append(proc)

    def per_pool(self) -> dict[tuple[str, str], int]:
        """Live worker processes by (namespace, pool)."""
        counts: dict[tuple[str, str], int] = {}
        for pod, _ in self.procs.values():
            counts[(pod.namespace, pod.pool)] = counts.get((pod.namespace, pod.pool), 0) + 1
        return counts

    def close(self, timeout: float = 30.0) -> None:
        """Stop every worker, waiting for them to finish their in-flight work."""
        for uid in list(self.procs):
            self._stop(uid)
        deadline = time.monotonic() + timeout
        for proc in self._stopping:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._stopping.clear()

    def run(self, stop: Callable[[], bool], interval: float = 0.5) -> None:
        """Sync every `interval` seconds until `stop()` is true, then stop all workers."""
        try:
            while not stop():
                try:
                    self.sync()
                except objects.ApiError as exc:
                    log.warning("listing pods failed: %s; retrying", exc)
                self._reap_stopped()
                time.sleep(interval)
        finally:
            self.close()

    def _reap_stopped(self) -> None:
        self._stopping[:] = [p for p in self._stopping if p.poll() is None]
