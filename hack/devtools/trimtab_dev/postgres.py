"""PostgreSQL as a subprocess: Debian's own server (hack/install-deps.sh installs it),
in a data directory of its own on a free loopback port, for the history tests, the
demo and the archive benchmark. It can be stopped and started again on the same data
and port, as the test that takes the database away mid-load does.

initdb and postgres refuse to run as root; as root they run as the `postgres` user
the Debian package creates, which owns the data directory.

Manual use: `python -m trimtab_dev.postgres` serves in the foreground and prints the URL.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from trimtab_dev import servers

_READY_TIMEOUT_S = 30.0
USER = "trimtab"
DATABASE = "trimtab"


def bin_dir() -> pathlib.Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL not found under /usr/lib/postgresql: run `make install` "
            "(hack/install-deps.sh installs Debian's postgresql)"
        )
    return found[-1].parent


def _as_owner(argv: list[str]) -> list[str]:
    """Run as `postgres` when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class Postgres:
    """One server on its own data directory and port: start, stop, start again."""

    def __init__(self, root: pathlib.Path) -> None:
        self.bin = bin_dir()
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = servers.free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        argv = [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-E", "UTF8"]
        argv += ["--auth=trust", "--no-instructions", "--no-sync"]
        subprocess.run(_as_owner(argv), check=True, capture_output=True)

    def start(self) -> None:
        # Durability is not under test here: fsync off keeps a loaded machine fast;
        # a stop is a fast shutdown, which writes everything out anyway.
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data}"]
        argv += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(_as_owner(argv), stdout=out, stderr=out)
        self._wait_ready()
        self._ensure_database()

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER]
        argv += ["-d", database, "-Atqc", sql]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while self._psql("SELECT 1").returncode != 0:
            if self._proc is not None and self._proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"postgres exited with {self._proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres was not ready after {_READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")  # noqa: S608
        if exists.stdout.strip() != "1":
            made = self._psql(f"CREATE DATABASE {DATABASE}")
            if made.returncode != 0:
                raise RuntimeError(f"creating database {DATABASE}: {made.stderr.strip()}")

    def stop(self) -> None:
        """A fast shutdown: connections are cut, committed work is kept. Through
        pg_ctl, since the process we started may be runuser, which signals are not
        passed through to."""
        if self._proc is None or self._proc.poll() is not None:
            return
        argv = [str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
        subprocess.run(_as_owner(argv), capture_output=True, check=False, timeout=60)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def query(self, sql: str) -> list[list[str]]:
        """Rows of a query through psql, as text: for tests to look without the product."""
        done = self._psql(sql, DATABASE)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return [line.split("|") for line in done.stdout.splitlines() if line]


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL for the block; stopped and its data removed after."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="trimtab-pg-"))
    try:
        server = Postgres(root)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_postgres() as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
