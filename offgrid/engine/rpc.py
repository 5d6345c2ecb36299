"""Models larger than one machine: llama.cpp's RPC backend, an rpc-server on each worker.

The workers named in `rpc_servers` are checked here, with the handshake llama.cpp's own client
opens with, before llama.cpp is let near them: llama.cpp aborts the whole process on a worker it
cannot reach or that speaks another protocol version. Then each worker's devices, and this
machine's CPU, take a share of every model's layers in proportion to their free memory.
"""

from __future__ import annotations

import logging
import socket
import struct

from . import llama
from .errors import RpcUnavailable, RpcWorkerUnreachable

log = logging.getLogger("offgrid.rpc")

# The wire protocol of llama.cpp's RPC (ggml/src/ggml-rpc/ggml-rpc.cpp of the llama.cpp that
# llama-cpp-python 0.3.36 vendors): a request is | command (1 byte) | size (8) | data |, an
# answer | size (8) | data |. HELLO is command 14 in every version; its request holds the
# client's transport capabilities (none, here: plain TCP), its answer the server's version.
HELLO = 14
CAPABILITIES_SIZE = 24
PROTOCOL_MAJOR, PROTOCOL_MINOR = 7, 0  # RPC_PROTO_*_VERSION in ggml-rpc.h
TIMEOUT = 10.0  # seconds to connect and to answer; an rpc-server serves one client at a time


def check_worker(endpoint: str, timeout: float = TIMEOUT) -> None:
    """Raise RpcWorkerUnreachable unless an rpc-server llama.cpp can use answers at endpoint."""
    host, _, port = endpoint.partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            connection.sendall(struct.pack("<BQ", HELLO, CAPABILITIES_SIZE)
                               + bytes(CAPABILITIES_SIZE))
            size, = struct.unpack("<Q", _receive(connection, 8))
            if size != 4 + CAPABILITIES_SIZE:
                raise RpcWorkerUnreachable(endpoint, "it does not answer as an rpc-server does")
            major, minor, patch = _receive(connection, size)[:3]
    except socket.timeout:
        raise RpcWorkerUnreachable(endpoint, f"no answer in {timeout:g} s (an rpc-server "
                                   "serves one client at a time: is another using it?)") from None
    except OSError as error:
        raise RpcWorkerUnreachable(endpoint, error.strerror or str(error)) from None
    if major != PROTOCOL_MAJOR or minor > PROTOCOL_MINOR:
        raise RpcWorkerUnreachable(
            endpoint, f"its rpc-server speaks RPC protocol {major}.{minor}.{patch} and this "
            f"llama.cpp {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}: build both from the same llama.cpp")


def _receive(connection: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = connection.recv(n - len(data))
        if not chunk:
            raise ConnectionError("it closed the connection during the handshake")
        data += chunk
    return data


class Workers:
    """The RPC workers every model is spread over, checked and registered with llama.cpp once."""

    def __init__(self, endpoints: list[str]):
        if not llama.rpc_supported():
            raise RpcUnavailable()
        self.endpoints = endpoints
        self.check()
        self._remote = [device for endpoint in endpoints
                        for device in llama.rpc_devices(endpoint)]
        # Listed last, so that the layers nearest the output stay here with the sampling.
        self.devices = [*self._remote, llama.cpu_device()]
        for device in self._remote:
            log.info("RPC device %s at %s: %d MiB free", device.name, device.description,
                     device.memory()[0] >> 20)

    def check(self) -> None:
        """Raise RpcWorkerUnreachable for the first worker that does not answer. Only while no
        model is loaded: one that is holds each worker's only connection."""
        for endpoint in self.endpoints:
            check_worker(endpoint)

    def free_memory(self) -> int:
        """Bytes the workers have free (each is asked; call only after check())."""
        return sum(device.memory()[0] for device in self._remote)
