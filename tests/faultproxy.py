"""A TCP proxy on 127.0.0.1 that breaks the connection to its upstream on demand.

Modes, switchable while it runs (:meth:`FaultProxy.set`):

- ``pass``: bytes flow both ways unchanged.
- ``refuse``: nothing listens on the port: a connect is refused, as with a closed port.
- ``reset``: a connection is accepted, then reset (RST) before any answer.
- ``hang``: a connection is accepted and read, and never answered; nothing reaches upstream.
- ``slow``: bytes flow, each chunk after ``delay`` seconds, in both directions.
- ``lose``: the next request reaches upstream and is carried out, but its answer is dropped
  and the connection reset, as when a network fails after the server acted; then ``pass``.

A mode change resets every open connection, so a client's pooled keep-alive connection
meets the new mode too. ``connections`` counts accepted connections (attempts seen).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["pass", "refuse", "reset", "hang", "slow", "lose"]
HOST = "127.0.0.1"


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = False
        self.port = self._listen(0)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener.getsockname()[1]

    def set(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch mode; open connections are reset."""
        with self._lock:
            self.mode, self.delay = mode, delay
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)
        if mode == "refuse" and self._listener is not None:
            self._listener.close()
            self._listener = None
        elif mode != "refuse" and self._listener is None:
            self._listen(self.port)

    def stop(self) -> None:
        self._stopped = True
        self.set("refuse")

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: refuse mode or stop
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if mode == "reset":
            _reset(client)
            return
        self._track(client)
        if mode == "hang":
            with contextlib.suppress(OSError):
                while client.recv(65536):
                    pass
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()
        self._pump(client, upstream)

    def _lose_this_answer(self) -> bool:
        """In ``lose`` mode, true once (the mode is then ``pass``)."""
        with self._lock:
            if self.mode != "lose":
                return False
            self.mode = "pass"
            return True

    def _pump(self, source: socket.socket, target: socket.socket, answer: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if answer and self._lose_this_answer():
                    _reset(target)
                    return
                if self.mode == "slow":
                    time.sleep(self.delay)
                if self.mode in ("hang", "reset", "refuse"):
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
