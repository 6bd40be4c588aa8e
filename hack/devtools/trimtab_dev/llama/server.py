"""llama-server as a subprocess: a real OpenAI-compatible endpoint (chat completions,
streaming, JSON-schema output, tool calls) serving the tiny generated model.

It owns finding the binary (hack/build-llama-server.sh builds and caches it on first
use), choosing a port, starting the server, waiting until the model is loaded, and
stopping it. Tests and the demo use it where a model server this project did not write
matters more than what the model says.

Manual use: `python -m trimtab_dev.llama.server [--port P] [--api-key K]` serves in the
foreground and prints the base URL.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import IO

from trimtab_dev import servers
from trimtab_dev.llama.tiny_model import TOOL_CALL_TOKEN_ID, cached_tiny_model

_BUILD_SCRIPT = pathlib.Path("hack") / "build-llama-server.sh"
_READY_TIMEOUT_S = 30.0


def llama_server_binary() -> pathlib.Path:
    """The llama-server binary's path, building it on first use (~10 CPU-minutes)."""
    return servers.built_binary(_BUILD_SCRIPT)


free_port = servers.free_port


def _health(url: str) -> int | None:
    """/health's status: 503 while the model loads, 200 once it serves; None if no answer."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 (http URL we built)
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _wait_ready(proc: subprocess.Popen[bytes], health_url: str, stderr: IO[bytes]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"llama-server exited with status {proc.returncode} before it was ready; "
                f"its stderr ends:\n{servers.tail(stderr)}"
            )
        if _health(health_url) == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"llama-server was not ready after {_READY_TIMEOUT_S:.0f}s ({health_url}); "
                f"its stderr ends:\n{servers.tail(stderr)}"
            )
        time.sleep(0.1)


def server_command(
    binary: pathlib.Path,
    model: pathlib.Path,
    port: int,
    *,
    api_key: str | None = None,
    extra_args: Sequence[str] = (),
    alias: str = "tiny",
    host: str = "127.0.0.1",
    slots: int = 2,
) -> list[str]:
    """llama-server's argv. Two slots serve two requests at once, one thread each keeps
    a parallel test run from oversubscribing the CPUs, and the web UI and warm-up run
    are off because tests need neither and warm-up only delays readiness."""
    argv = [str(binary), "-m", str(model), "--host", host, "--port", str(port)]
    # The context is shared by the slots: 2048 tokens each.
    argv += ["-c", str(2048 * slots), "-np", str(slots), "-t", "1", "-a", alias]
    argv += ["--no-webui", "--no-warmup"]
    if api_key is not None:
        argv += ["--api-key", api_key]
    return argv + list(extra_args)


@contextlib.contextmanager
def running_llama_server(
    *,
    model: pathlib.Path | None = None,
    port: int | None = None,
    api_key: str | None = None,
    extra_args: Sequence[str] = (),
    alias: str = "tiny",
    host: str = "127.0.0.1",
    slots: int = 2,
) -> Iterator[str]:
    """Run llama-server for the duration of the block and yield its base URL
    (`http://HOST:P/v1`), once /health says the model is loaded. `host` is loopback
    unless told (the demo's real-node pods reach the host's bridge address only);
    `slots` is how many requests it serves at once.

    `model` defaults to the tiny generated model and `port` to a free one. The server is
    terminated (killed if it does not stop in time) when the block exits.
    """
    binary = llama_server_binary()
    model = model if model is not None else cached_tiny_model()
    port = port if port is not None else free_port()
    argv = server_command(
        binary, model, port, api_key=api_key, extra_args=extra_args, alias=alias,
        host=host, slots=slots,
    )  # fmt: skip
    # stderr goes to a file rather than a pipe: nobody reads it while the server runs,
    # and a full pipe would block the server; its tail explains a failed start.
    with tempfile.TemporaryFile(prefix="llama-server-", suffix=".log") as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            _wait_ready(proc, f"http://{host}:{port}/health", stderr)
            yield f"http://{host}:{port}/v1"
        finally:
            servers.stop(proc)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trimtab_dev.llama.server",
        description="Serve the tiny model with llama-server in the foreground.",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--model", type=pathlib.Path, default=None, help="a GGUF file")
    parser.add_argument("--alias", default="tiny", help="the model name it reports")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the context manager stops the server either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_llama_server(
        model=args.model, port=args.port, api_key=args.api_key, alias=args.alias
    ) as url:
        print(url, flush=True)
        print(
            f"model {args.alias!r}; for tool_choice=auto pass "
            f'logit_bias {{"{TOOL_CALL_TOKEN_ID}": 4}}; Ctrl-C stops',
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
