"""The checks under `--rpc` (engine/rpc.py, config.py): which rpc_servers values are accepted,
and what a worker that is not there, answers something else or speaks another protocol version
is told as; against real sockets on loopback. tests/test_rpc.py runs real rpc-servers."""

import socket
import struct
import threading

import pytest

from offgrid.config import ConfigError, Settings
from offgrid.engine import llama, rpc
from offgrid.engine.errors import RpcUnavailable, RpcWorkerUnreachable


def test_rpc_servers_are_host_port_pairs():
    settings = Settings(rpc_servers=" 127.0.0.1:50052, worker-2:50053 ,")
    assert settings.rpc_endpoints() == ["127.0.0.1:50052", "worker-2:50053"]
    assert Settings().rpc_endpoints() == []


@pytest.mark.parametrize("value", ["127.0.0.1", "worker:", ":50052", "worker:http",
                                   "worker:70000", "::1:50052", "a:1,a:1"])
def test_rpc_servers_that_llama_cpp_could_not_use_are_refused(value):
    with pytest.raises(ConfigError, match="rpc_servers must be"):
        Settings(rpc_servers=value)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once it is closed


def test_a_worker_nobody_listens_for_is_unreachable():
    port = closed_port()
    with pytest.raises(RpcWorkerUnreachable, match=f"127.0.0.1:{port} cannot be used: "
                                                   "Connection refused"):
        rpc.check_worker(f"127.0.0.1:{port}")


class FakeWorker:
    """A loopback listener that answers one connection's first request with `answer`."""

    def __init__(self, answer: bytes):
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self._thread.start()

    def _serve(self, answer: bytes) -> None:
        connection, _ = self._listener.accept()
        with connection:
            self.requests.append(connection.recv(1 + 8 + rpc.CAPABILITIES_SIZE))
            connection.sendall(answer)

    def close(self) -> None:
        self._thread.join(10)
        self._listener.close()


def hello_answer(major: int, minor: int) -> bytes:
    return struct.pack("<Q4B", 4 + rpc.CAPABILITIES_SIZE, major, minor, 0, 0) + bytes(24)


def test_a_worker_of_this_protocol_version_passes_after_a_hello():
    worker = FakeWorker(hello_answer(rpc.PROTOCOL_MAJOR, rpc.PROTOCOL_MINOR))
    rpc.check_worker(worker.endpoint)
    worker.close()
    assert worker.requests == [bytes([rpc.HELLO]) + struct.pack("<Q", 24) + bytes(24)]


def test_a_worker_of_another_protocol_version_is_refused():
    older = rpc.PROTOCOL_MAJOR - 1
    worker = FakeWorker(hello_answer(older, 0))
    with pytest.raises(RpcWorkerUnreachable, match=f"speaks RPC protocol {older}.0.0 and this "
                                                   f"llama.cpp {rpc.PROTOCOL_MAJOR}.0"):
        rpc.check_worker(worker.endpoint)
    worker.close()


def test_something_else_at_the_address_is_refused():
    worker = FakeWorker(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(RpcWorkerUnreachable, match="does not answer as an rpc-server does"):
        rpc.check_worker(worker.endpoint)
    worker.close()


def test_a_worker_that_hangs_up_is_refused():
    worker = FakeWorker(b"")
    with pytest.raises(RpcWorkerUnreachable, match="closed the connection"):
        rpc.check_worker(worker.endpoint)
    worker.close()


def test_a_build_without_rpc_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(llama, "rpc_supported", lambda: False)
    with pytest.raises(RpcUnavailable, match="-DGGML_RPC=ON"):
        rpc.Workers(["127.0.0.1:50052"])
