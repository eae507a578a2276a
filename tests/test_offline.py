"""The offline guarantee: the autouse guard in conftest.py blocks every outbound connection of the test
process (so the whole suite runs as if there were no network), nothing contacts a model hub, and Gradio's
telemetry and version checks are off. For child processes too, run the suite with no network at all:

    unshare -n .venv/bin/python -m pytest -q -m "not model and not browser"     (as root)
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NETWORK_ATTEMPTS, NetworkBlocked, is_local_address

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def attempts():
    """The attempts this test makes on purpose; taken out afterwards so the guard does not fail the test."""
    before = len(NETWORK_ATTEMPTS)
    yield lambda: NETWORK_ATTEMPTS[before:]
    del NETWORK_ATTEMPTS[before:]


def test_outbound_connections_are_blocked(attempts):
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never a real host
    with pytest.raises(NetworkBlocked):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.connect(("2001:db8::1", 443, 0, 0))
    with pytest.raises(NetworkBlocked):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\0" * 12, ("9.9.9.9", 53))  # a DNS query
    with pytest.raises(NetworkBlocked):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect_ex(("8.8.8.8", 80))  # the usual "which is my outbound IP" trick
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.org", 443)
    assert len(attempts()) == 5


def test_a_swallowed_attempt_is_still_recorded(attempts):
    """Telemetry code catches connection errors; the guard records the attempt so the test fails anyway."""
    import httpx

    try:
        httpx.get("https://api.gradio.app/pkg-version", timeout=1)
    except Exception:
        pass
    assert attempts() and "api.gradio.app" in attempts()[0]


def test_loopback_and_unix_sockets_work():
    assert all(is_local_address(a) for a in [("127.0.0.1", 1), ("127.8.9.10", 1), ("::1", 1, 0, 0), ("localhost", 1),
                                              ("0.0.0.0", 1), "/tmp/x.sock", b"\0abstract"])
    assert not any(is_local_address(a) for a in [("10.0.0.1", 1), ("192.168.1.1", 1), ("huggingface.co", 443),
                                                  ("2001:db8::1", 1, 0, 0)])
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=5):
            conn, _ = srv.accept()
            conn.close()
    a, b = socket.socketpair(socket.AF_UNIX)
    a.sendall(b"ok")
    assert b.recv(2) == b"ok"
    a.close()
    b.close()
    assert socket.getaddrinfo("localhost", 80)


def test_no_model_hub(attempts, monkeypatch):
    from huggingface_hub import constants, hf_hub_download

    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE
    with pytest.raises(Exception) as e:  # offline mode: answered locally, no connection tried
        hf_hub_download("intfloat/multilingual-e5-small", "config.json", cache_dir=str(Path("/nonexistent")))
    assert attempts() == [], e.value
    # even with offline mode switched off, the hub's endpoint cannot be reached from a test
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd.constants, "HF_HUB_OFFLINE", False, raising=False)
    with pytest.raises(Exception):
        hf_hub_download("intfloat/multilingual-e5-small", "config.json", cache_dir=str(Path("/nonexistent")))
    assert any("huggingface.co" in a for a in attempts())


def test_gradio_telemetry_and_version_checks_are_off():
    import gradio.analytics

    import ui.app  # noqa: F401  (sets the variables before importing gradio)

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and not gradio.analytics.analytics_enabled()


def test_the_ui_module_switches_telemetry_off_by_itself():
    """Without the test suite's environment: importing ui.app sets the offline variables before gradio loads."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")}
    code = ("import os, ui.app, gradio.analytics as a; "
            "print(os.environ['GRADIO_ANALYTICS_ENABLED'], os.environ['HF_HUB_OFFLINE'], a.analytics_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "1", "False"]
