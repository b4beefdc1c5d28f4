"""A TCP relay on loopback that can hold connections, to make a calendar server slow.

Not a mock: calsync talks real HTTP through it to a real CalDAV server. It stands in for a
slow network, which a server on loopback cannot produce by itself. Each new connection waits
until ``delay`` seconds have passed (re-read while waiting, so a test can release it early)
before it is relayed to the upstream port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class SlowProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay = 0.0
        self.waiting = 0  # connections currently held back
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._cutoff: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def url_for(self, upstream_url: str) -> str:
        return upstream_url.replace(f":{self.upstream_port}/", f":{self.port}/", 1)

    def hold_current(self) -> None:
        """Keep holding the connections waiting now; let later ones through at once."""
        self._cutoff = time.monotonic()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        arrived = time.monotonic()
        self.waiting += 1
        try:
            while time.monotonic() - arrived < self.delay and not self._closed:
                if self._cutoff is not None and arrived > self._cutoff:
                    break
                time.sleep(0.02)
        finally:
            self.waiting -= 1
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, target), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
