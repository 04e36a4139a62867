"""Real services a fault test can break: its own Redis server and a TCP proxy in front of PostgreSQL.

The shared PostgreSQL and Redis are used by others at the same time and must never be stopped, so a
test stops its own Redis, and makes the database unreachable by cutting the proxy, not the server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis

from tests.e2e.stack import free_port


class RedisServer:
    """A throwaway redis-server on a free port, without persistence: a restart loses every message."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut(seconds)`` drops every open connection and refuses
    new ones for that long, as a network partition or a database restart would."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._refusing = threading.Event()
        self._closed = threading.Event()
        self.connections_cut = 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self, seconds: float) -> None:
        self._refusing.set()
        with self._lock:
            open_sockets = list(self._sockets)
        self.connections_cut += len(open_sockets) // 2
        for sock in open_sockets:
            self._drop(sock)
        time.sleep(seconds)
        self._refusing.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._drop(sock)


def stage_processes(stage_id: int, home: Path) -> list[int]:
    """Pids of live ``python -m worker.stage_process STAGE_ID`` processes of the stack living in ``home``
    (other stacks on this machine number their stages too)."""
    wanted = f"worker.stage_process\0{stage_id}\0".encode()
    environment = f"STAGERUN_HOME={home}\0".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted in (proc / "cmdline").read_bytes() and environment in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
