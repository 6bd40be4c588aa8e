"""A TCP proxy that can go silent: while stalled it keeps every connection open
and accepts new ones but moves no byte either way, as a network that dropped a NAT entry
or a half-open socket would. Tests put it between a client and a real server to show the
client gives up on its own deadline instead of waiting forever."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

CHUNK = 65536


class StallingProxy:
    """Forwards `host`:`port` (the upstream's host, so its certificate still names the
    address a client dials) to `upstream` until `stall()`, and again after `resume()`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.host = upstream[0]
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._closed.is_set():
            self._flowing.wait()
            try:
                readable, _, _ = select.select([a, b], [], [], 0.1)
                for sock in readable:
                    if not self._flowing.is_set():
                        break  # stalled between select and read: the bytes wait
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    peer[sock].sendall(data)
            except OSError:
                return


@contextlib.contextmanager
def stalling_proxy(upstream: tuple[str, int]) -> Iterator[StallingProxy]:
    proxy = StallingProxy(upstream)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
