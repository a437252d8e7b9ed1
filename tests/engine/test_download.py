"""`vp3d weights download` against a real HTTP server on loopback (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from converters.errors import CheckpointError
from vp3d_engine.cli import main
from vp3d_engine.original_weights import download_weights

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.endswith("pretrained_h36m_cpn.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path.endswith("d-pt-243.bin"):  # claims more than it sends: a dropped connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 2))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/video-pose-3d/"
    httpd.shutdown()
    httpd.server_close()


def test_download_writes_the_file_and_checks_its_sha256(server: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    path = download_weights("pretrained_h36m_cpn.bin", tmp_path, base_url=server, sha256=digest)
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pretrained_h36m_cpn.bin"]


def test_wrong_checksum_leaves_nothing_behind(server: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not match"):
        download_weights("pretrained_h36m_cpn.bin", tmp_path, base_url=server, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_download_leaves_nothing_behind(server: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="stopped at"):
        download_weights("d-pt-243.bin", tmp_path, base_url=server)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server_is_a_clear_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="HTTP 404"):
        download_weights("pretrained_h36m_detectron_coco.bin", tmp_path, base_url=server)


def test_cli_download_uses_the_environment_mirror(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VP3D_WEIGHTS_BASE_URL", server)
    assert main(["weights", "download", "pretrained_h36m_cpn.bin", "--dir", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "pretrained_h36m_cpn.bin").read_bytes() == PAYLOAD
    assert main(["weights", "download", "pretrained_h36m_detectron_coco.bin", "--dir", str(tmp_path),
                 "--quiet"]) == 2
    assert "HTTP 404" in capsys.readouterr().err
