"""Jaeger as a subprocess: a real trace backend (its all-in-one v2 binary, built by
hack/build-jaeger.sh) that receives OTLP over HTTP and answers its query API, with
traces kept in memory. Tests and the demo export run traces to it and read them back.

Every port is on loopback and chosen free, from a config written for the run: the
binary's defaults would bind well-known ports on every interface.

Manual use: `python -m trimtab_dev.jaeger` serves in the foreground and prints the
OTLP endpoint and the query URL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from trimtab_dev import servers

_BUILD_SCRIPT = pathlib.Path("hack") / "build-jaeger.sh"
_READY_TIMEOUT_S = 30.0


def jaeger_binary() -> pathlib.Path:
    """The jaeger binary's path, building it on first use (~4 minutes on 2 cores)."""
    return servers.built_binary(_BUILD_SCRIPT)


UI_ENV = "TRIMTAB_JAEGER_UI"


def config(
    host: str, otlp_port: int, query_port: int, grpc_port: int, ui: pathlib.Path | None = None
) -> dict[str, Any]:
    """OTLP/HTTP in, an in-memory store, the query API out, and the UI from `ui` (a
    built jaeger-ui directory: Jaeger's module ships without one, and its source is
    not on a package registry); the collector's own metrics are off, so it binds
    nothing else."""
    query: dict[str, Any] = {
        "storage": {"traces": "mem"},
        "http": {"endpoint": f"{host}:{query_port}"},
        "grpc": {"endpoint": f"{host}:{grpc_port}"},
    }
    if ui is not None:
        query["ui"] = {"assets_path": str(ui)}
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_query": query,
            "jaeger_storage": {"backends": {"mem": {"memory": {"max_traces": 100000}}}},
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{host}:{otlp_port}"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "mem"}},
    }


@dataclasses.dataclass(frozen=True)
class Jaeger:
    otlp_endpoint: str  # http://HOST:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT
    query_url: str  # http://HOST:PORT, its query API and UI

    def trace_url(self, trace_id: int | str) -> str:
        tid = trace_id if isinstance(trace_id, str) else f"{trace_id:032x}"
        return f"{self.query_url}/trace/{tid}"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.query_url + path, timeout=5.0) as response:  # noqa: S310
            return json.loads(response.read())

    def services(self) -> list[str]:
        return list(self._get("/api/services").get("data") or [])

    def trace(self, trace_id: int | str) -> dict[str, Any] | None:
        """The trace as the query API returns it (spans, processes), or None."""
        tid = trace_id if isinstance(trace_id, str) else f"{trace_id:032x}"
        try:
            found = self._get(f"/api/traces/{tid}").get("data") or []
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        return found[0] if found else None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def running_jaeger(host: str = "127.0.0.1") -> Iterator[Jaeger]:
    """Run Jaeger for the block, on free ports of `host` (loopback unless told: the
    demo's real-node pods reach the host's bridge address only), serving the UI built
    at $TRIMTAB_JAEGER_UI when that is set."""
    binary = jaeger_binary()
    ui = pathlib.Path(os.environ[UI_ENV]) if os.environ.get(UI_ENV) else None
    otlp, query, grpc = servers.free_port(), servers.free_port(), servers.free_port()
    with tempfile.TemporaryDirectory(prefix="jaeger-") as tmp:
        cfg = pathlib.Path(tmp) / "config.json"  # YAML is a superset of JSON
        cfg.write_text(json.dumps(config(host, otlp, query, grpc, ui)))
        with (pathlib.Path(tmp) / "jaeger.log").open("w+b") as log:
            argv = [str(binary), "--config", f"file:{cfg}"]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            try:
                _wait_ready(proc, f"http://{host}:{query}/api/services", log)
                yield Jaeger(f"http://{host}:{otlp}", f"http://{host}:{query}")
            finally:
                servers.stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Any) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not _ready(url):
        if proc.poll() is not None:
            raise RuntimeError(
                f"jaeger exited with status {proc.returncode}; its log ends:\n{servers.tail(log)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"jaeger was not ready after {_READY_TIMEOUT_S:.0f} s ({url})")
        time.sleep(0.1)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_jaeger() as jaeger:
        print(f"OTEL_EXPORTER_OTLP_ENDPOINT={jaeger.otlp_endpoint}", flush=True)
        print(f"query and UI: {jaeger.query_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
