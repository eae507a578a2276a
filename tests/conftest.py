import ipaddress
import os
import shutil
import socket
from pathlib import Path

import pytest

# Offline: no model hub, no telemetry, no version checks (set before anything imports these libraries)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def fake_embedder():
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def cfg(tmp_path):
    from rag.config import RagConfig

    return RagConfig.from_env(index_dir=str(tmp_path / "index"))


@pytest.fixture(scope="session")
def real_cfg(tmp_path_factory):
    from rag.config import RagConfig

    return RagConfig.from_env(index_dir=str(tmp_path_factory.mktemp("real") / "index"))


@pytest.fixture(scope="session")
def real_embedder(real_cfg):
    from rag.stores.embedder import get_embedder
    from rag.modelprep.prepare import ModelMissingError

    try:
        return get_embedder(real_cfg)
    except ModelMissingError as e:
        pytest.fail(f"real embedder missing: {e}")


@pytest.fixture(scope="session")
def seeded_store(real_cfg, real_embedder, tmp_path_factory):
    """The bundled seeds ingested once with the real embedder."""
    from rag.ingest.pipeline import ingest
    from rag.stores.factory import open_store

    seeds = tmp_path_factory.mktemp("seeds")
    for f in SEEDS.iterdir():
        shutil.copy(f, seeds / f.name)
    ingest([seeds], real_cfg, real_embedder, progress=False)
    return open_store(real_cfg, real_embedder.id, real_embedder.dim)


TWO_DOCS = {
    "navo.txt": "De NAVO bestaat 75 jaar. Het jubileum werd gevierd in Washington.",
    "irak.txt": "Ministers stemden in met een uitbreiding van de NAVO-missie in Irak.",
}


def write_file(folder, name, text):
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def write_docs(folder, docs: dict):
    """A folder holding ``docs`` (file name -> text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        write_file(folder, name, text)
    return folder


def indexed_store(cfg, embedder, folder, docs: dict):
    """``docs`` written to ``folder``, ingested with ``embedder`` and opened through the factory."""
    from rag.ingest.pipeline import ingest
    from rag.stores.factory import open_store

    ingest([write_docs(folder, docs)], cfg, embedder, progress=False)
    return open_store(cfg, embedder.id, embedder.dim)


@pytest.fixture
def docs(tmp_path):
    return write_docs(tmp_path / "docs", TWO_DOCS)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """An ASGI app served by uvicorn in a thread on a free 127.0.0.1 port (``with LiveServer(...) as url``).
    ``make_app(port)`` builds the app, so apps that need to know their own port get it."""

    def __init__(self, make_app, log_level: str = "warning"):
        import threading

        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(make_app(self.port), host="127.0.0.1", port=self.port,
                                                    log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def chunks_of(store):
    """Every chunk of a store, via the chunk-store seam."""
    from rag.stores.base import document_chunks

    return [c for d in store.chunks.documents() for c in document_chunks(store.chunks, d.doc_id)]


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# ---------- offline guarantee ----------
# Every test runs with outbound network blocked in this process: connecting (TCP or UDP) or sending to
# anything but loopback (127.0.0.0/8, ::1, "localhost") or a unix socket, and resolving any other host name,
# raise NetworkBlocked. A blocked attempt also fails the test that made it, so code that swallows the
# error (telemetry, version checks, hub look-ups) cannot hide it. Child processes (Ray workers, Chromium)
# are outside this guard: run the suite under `unshare -n` for those (see tests/test_offline.py).


class NetworkBlocked(ConnectionRefusedError):
    """An outbound network access attempted during a test."""


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
NETWORK_ATTEMPTS: list[str] = []  # what was blocked, in order


def is_local_address(address) -> bool:
    """A unix socket path, a loopback or unspecified IP, or a local host name."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX path (str/bytes) or an abstract socket
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0].strip("[]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost
    return ip.is_loopback or ip.is_unspecified


def _blocked(what: str, address) -> NetworkBlocked:
    NETWORK_ATTEMPTS.append(f"{what} {address!r}")
    return NetworkBlocked(f"network access blocked in tests: {what} {address!r}")


_real = {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
         "sendto": socket.socket.sendto, "getaddrinfo": socket.getaddrinfo}


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
        raise _blocked("connect", address)
    return _real["connect"](self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
        raise _blocked("connect_ex", address)
    return _real["connect_ex"](self, address)


def _sendto(self, data, *args):
    address = args[-1]
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
        raise _blocked("sendto", address)
    return _real["sendto"](self, data, *args)


def _getaddrinfo(host, *args, **kw):
    if host is not None and not is_local_address((host, 0)):
        raise _blocked("resolve", host)
    return _real["getaddrinfo"](host, *args, **kw)


@pytest.fixture(scope="session", autouse=True)
def _offline():
    """Installed before every other fixture (session scope, autouse), so model loading is covered too."""
    socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex
    socket.socket.sendto, socket.getaddrinfo = _sendto, _getaddrinfo
    yield
    socket.socket.connect, socket.socket.connect_ex = _real["connect"], _real["connect_ex"]
    socket.socket.sendto, socket.getaddrinfo = _real["sendto"], _real["getaddrinfo"]


@pytest.fixture(autouse=True)
def _no_network_attempts(_offline):
    """Fail a test that tried to reach the network, even if the code under test swallowed the error."""
    before = len(NETWORK_ATTEMPTS)
    yield
    new = NETWORK_ATTEMPTS[before:]
    if new:
        del NETWORK_ATTEMPTS[before:]
        pytest.fail(f"network access attempted (blocked): {'; '.join(new[:5])}", pytrace=False)
