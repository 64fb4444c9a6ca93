"""Downloads into the zoo cache: verified, atomic, and never leaving partial files behind.

Runs against ``file://`` URLs and a throw-away HTTP server on loopback (no internet).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import struct
import threading
from pathlib import Path

import pytest

from vaezoo.errors import VaezooError
from vaezoo.zoo import download as dl
from vaezoo.zoo.api import download
from vaezoo.zoo.entry import PretrainedEntry
from vaezoo.zoo.errors import ChecksumError, DownloadError

PAYLOAD = os.urandom(300_000)  # several read chunks
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
WRONG = "0" * 64


def make_entry(url: str, sha256: str = DIGEST, name: str = "tiny-mlp.download") -> PretrainedEntry:
    meta = {
        "num_params": 1, "file_size": len(PAYLOAD),
        "dataset": {"name": "digits", "split": "test", "preprocessing": "none", "data": {"name": "digits"}},
        "metrics": {"neg_elbo": 1.0, "nll": 1.0, "num_samples": 1, "bits_per_dim": 1.0, "num_examples": 1},
        "check": {"split": "test", "first": 1, "num_samples": 1, "seed": 0, "batch_size": 1, "neg_elbo": 1.0, "nll": 1.0},
    }
    config = {"data_shape": [4], "latent_dim": 1, "encoder": "mlp", "decoder": "mlp", "prior": "normal", "likelihood": "bernoulli"}
    return PretrainedEntry(name=name, config=config, weights=url, sha256=sha256, meta=meta)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("VAEZOO_HOME", str(home))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "served" / "weights.safetensors"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the connection closes after each response: truncation is visible
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        if self.path == "/good":
            self._send(PAYLOAD, len(PAYLOAD))
        elif self.path == "/truncated":
            self._send(PAYLOAD[:100_000], len(PAYLOAD))
        elif self.path == "/reset":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:50_000])
            self.wfile.flush()
            # SO_LINGER 0: close with a TCP reset instead of a clean end of stream
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif self.path == "/error":
            self.send_error(500, "Internal Server Error")
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state = {"running": True}

    def stop():
        if state["running"]:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)
            state["running"] = False

    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    httpd.stop = stop
    yield httpd
    stop()


# -- cache location ------------------------------------------------------------------------
def test_cache_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path / "h"))
    assert dl.cache_home() == tmp_path / "h"
    assert dl.weights_dir() == tmp_path / "h" / "weights"
    monkeypatch.delenv("VAEZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_home() == tmp_path / "xdg" / "vaezoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dl.cache_home() == Path("~/.cache/vaezoo").expanduser()


# -- file:// -------------------------------------------------------------------------------
def test_file_url_good(home, source_file):
    entry = make_entry(source_file.as_uri())
    path = download(entry, progress=False)
    assert path == dl.cache_path(entry) and path.parent == home / "weights"
    assert path.read_bytes() == PAYLOAD
    assert files_in(home) == [path]


def test_file_url_wrong_digest_caches_nothing(home, source_file):
    with pytest.raises(ChecksumError) as info:
        download(make_entry(source_file.as_uri(), sha256=WRONG), progress=False)
    message = str(info.value)
    assert DIGEST in message and WRONG in message and "\n" not in message
    assert isinstance(info.value, VaezooError)
    assert files_in(home) == []


def test_file_url_missing_file(home, tmp_path):
    with pytest.raises(DownloadError, match="cannot download"):
        download(make_entry((tmp_path / "nope.safetensors").as_uri()), progress=False)
    assert files_in(home) == []


# -- http:// -------------------------------------------------------------------------------
def test_http_good(home, server):
    path = download(make_entry(server.url("/good")), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert files_in(home) == [path]


def test_http_wrong_digest(home, server):
    with pytest.raises(ChecksumError, match=WRONG) as info:
        download(make_entry(server.url("/good"), sha256=WRONG), progress=False)
    assert DIGEST in str(info.value)
    assert files_in(home) == []


def test_http_truncated(home, server):
    with pytest.raises(DownloadError, match=r"truncated|broke off") as info:
        download(make_entry(server.url("/truncated")), progress=False)
    assert str(len(PAYLOAD)) in str(info.value)
    assert files_in(home) == []


def test_http_connection_reset(home, server):
    with pytest.raises(DownloadError):
        download(make_entry(server.url("/reset")), progress=False)
    assert files_in(home) == []


def test_http_server_error(home, server):
    with pytest.raises(DownloadError, match="HTTP 500"):
        download(make_entry(server.url("/error")), progress=False)
    assert files_in(home) == []


def test_interrupted_download_leaves_nothing(home, server, monkeypatch):
    def interrupting_bar(total, what, progress):
        def update(n):
            if n is not None:
                raise KeyboardInterrupt
        return update

    monkeypatch.setattr(dl, "_progress_bar", interrupting_bar)
    with pytest.raises(KeyboardInterrupt):
        download(make_entry(server.url("/good")), progress=True)
    assert files_in(home) == []


def test_progress_bar_on_a_terminal(home, server, monkeypatch):
    monkeypatch.setattr(dl, "_stderr_is_tty", lambda: True)
    path = download(make_entry(server.url("/good")), progress=True)
    assert path.read_bytes() == PAYLOAD


def test_cached_file_is_reused_without_network(home, server):
    entry = make_entry(server.url("/good"))
    first = download(entry, progress=False)
    server.stop()
    assert download(entry, progress=False) == first
    assert Handler.requests == ["/good"]


def test_corrupted_cache_is_downloaded_again(home, server):
    entry = make_entry(server.url("/good"))
    path = download(entry, progress=False)
    path.write_bytes(b"corrupted" + PAYLOAD[9:])
    with pytest.warns(UserWarning, match="downloading it again"):
        again = download(entry, progress=False)
    assert again == path and path.read_bytes() == PAYLOAD
    assert Handler.requests == ["/good", "/good"]


def test_corrupted_cache_offline_is_an_error_and_removed(home, server):
    entry = make_entry(server.url("/good"))
    path = download(entry, progress=False)
    path.write_bytes(PAYLOAD[:-1])
    server.stop()
    with pytest.warns(UserWarning, match="sha256"), pytest.raises(DownloadError):
        download(entry, progress=False)
    assert files_in(home) == []
