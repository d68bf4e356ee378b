"""``dirti-bench fetch`` against a Zenodo-like records API served from a loopback HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dirti_bench.cli import main
from dirti_bench.data import fetch
from dirti_bench.data.dirti import IMAGE_FOLDER, RATINGS_FILE, load_dirti
from dirti_bench.errors import UserError
from dirti_bench.paths import cache_home, dataset_dir

RECORD_PATH = f"/api/records/{fetch.RECORD_ID}"


class LoopbackServer:
    """Serves fixed bytes per path on 127.0.0.1 and counts the requests per path."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                body = server.routes.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def total_hits(self) -> int:
        return sum(self.hits.values())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def demo_members(demo: Path, prefix: str) -> dict[str, bytes]:
    """The demo set's files under ``prefix`` inside an archive."""
    members = {f"{prefix}{RATINGS_FILE}": (demo / RATINGS_FILE).read_bytes()}
    for img in sorted((demo / IMAGE_FOLDER).iterdir()):
        members[f"{prefix}{IMAGE_FOLDER}/{img.name}"] = img.read_bytes()
    return members


@pytest.fixture(scope="module")
def nested_zip(demo_master) -> bytes:
    """The demo set nested one folder down, with macOS clutter, as hand-made zips often are."""
    members = demo_members(demo_master, "DIRTI/")
    members["__MACOSX/DIRTI/._DIRTI_Supplementary.xlsx"] = b"\x00\x05\x16\x07 resource fork"
    members["DIRTI/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    return zip_bytes(members)


@pytest.fixture
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


def legacy_record(key: str, data: bytes, checksum: str | None = None) -> dict:
    """Zenodo's legacy answer: absolute links.self to zenodo.org (must be re-rooted on the base)."""
    return {"id": int(fetch.RECORD_ID), "files": [{
        "key": key, "size": len(data), "checksum": checksum or f"md5:{md5(data)}",
        "links": {"self": f"https://zenodo.org{RECORD_PATH}/files/{key}/content"},
    }]}


def serve_legacy(server: LoopbackServer, archive: bytes, checksum: str | None = None) -> None:
    server.routes[RECORD_PATH] = json.dumps(legacy_record("DIRTI.zip", archive, checksum)).encode()
    server.routes[f"{RECORD_PATH}/files/DIRTI.zip/content"] = archive


def leftovers() -> list[str]:
    """Everything under the cache home: a failed fetch must leave this empty."""
    root = cache_home()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_fetch_unpacks_a_nested_zip_into_the_loader_layout(server, nested_zip, demo_stimuli):
    serve_legacy(server, nested_zip)
    root = fetch.fetch_dirti(server.url, progress=False)
    assert root == dataset_dir() / "dirti"
    assert (root / ".complete").is_file()
    assert sorted(p.name for p in root.iterdir()) == [".complete", IMAGE_FOLDER, RATINGS_FILE]
    # Same image bytes, names and ratings as the set that was zipped.
    assert load_dirti(root).sha256 == demo_stimuli.sha256
    assert fetch.local_dirti() == root
    # No staging folder or pooch download left beside the data.
    assert sorted(p.name for p in dataset_dir().iterdir()) == ["dirti"]


def test_second_fetch_downloads_nothing(server, nested_zip):
    serve_legacy(server, nested_zip)
    first = fetch.fetch_dirti(server.url, progress=False)
    hits = server.total_hits()
    assert hits == 2  # records API + one file
    assert fetch.fetch_dirti(server.url, progress=False) == first
    assert fetch.ensure_dirti(server.url) == first
    assert server.total_hits() == hits


def test_force_downloads_again_and_replaces_the_copy(server, nested_zip):
    serve_legacy(server, nested_zip)
    root = fetch.fetch_dirti(server.url, progress=False)
    (root / "stale.txt").write_text("from an older copy")
    assert fetch.fetch_dirti(server.url, force=True, progress=False) == root
    assert server.hits[f"{RECORD_PATH}/files/DIRTI.zip/content"] == 2
    assert not (root / "stale.txt").exists()
    assert (root / ".complete").is_file()


def test_an_incomplete_copy_is_replaced(server, nested_zip, demo_stimuli):
    """A folder without the marker (an interrupted run) is not trusted: fetch again and replace it."""
    partial = dataset_dir() / "dirti"
    (partial / IMAGE_FOLDER).mkdir(parents=True)
    (partial / IMAGE_FOLDER / "1001_food.jpg").write_bytes(b"half")
    assert fetch.local_dirti() is None
    serve_legacy(server, nested_zip)
    assert fetch.ensure_dirti(server.url) == partial
    assert load_dirti(partial).sha256 == demo_stimuli.sha256


def test_base_url_from_environment(server, nested_zip, monkeypatch, demo_stimuli):
    serve_legacy(server, nested_zip)
    monkeypatch.setenv(fetch.BASE_URL_ENV, server.url + "/")
    root = fetch.ensure_dirti()  # what `dirti-bench run` without --data calls
    assert load_dirti(root).sha256 == demo_stimuli.sha256
    assert server.hits[RECORD_PATH] == 1


def test_inveniordm_record_with_separate_files(server, demo_master, demo_stimuli):
    """Modern form: files.entries, links.content for the bytes (links.self is metadata);
    images zipped flat in 'DIRTI Database.zip', the xlsx as its own file."""
    images = zip_bytes({p.name: p.read_bytes() for p in sorted((demo_master / IMAGE_FOLDER).iterdir())})
    xlsx = (demo_master / RATINGS_FILE).read_bytes()
    entries = {}
    for key, data in ((f"{IMAGE_FOLDER}.zip", images), (RATINGS_FILE, xlsx)):
        content = f"/mirror/files/{key.replace(' ', '%20')}"
        server.routes[content] = data
        entries[key] = {"checksum": f"md5:{md5(data)}", "size": len(data),
                        "links": {"self": f"{server.url}/metadata/{key}", "content": f"{server.url}{content}"}}
    server.routes[RECORD_PATH] = json.dumps({"files": {"enabled": True, "entries": entries}}).encode()
    root = fetch.fetch_dirti(server.url, progress=False)
    assert load_dirti(root).sha256 == demo_stimuli.sha256
    assert not any(p.startswith("/metadata") for p in server.hits)


def offers_the_manual_download(exc: UserError) -> bool:
    """The library message names the setting neutrally; the CLI turns ``option`` into ``--data``."""
    options = (exc.option,) if isinstance(exc.option, str) else tuple(exc.option or ())
    return "data" in options and "point the data option at" in str(exc)


def test_wrong_checksum_leaves_nothing_behind(server, nested_zip):
    serve_legacy(server, nested_zip, checksum=f"md5:{md5(b'another file')}")
    with pytest.raises(UserError, match="checksum") as err:
        fetch.fetch_dirti(server.url, progress=False)
    assert offers_the_manual_download(err.value)
    assert fetch.local_dirti() is None
    assert leftovers() == []


def test_wrong_checksum_keeps_the_previous_copy(server, nested_zip, demo_stimuli):
    serve_legacy(server, nested_zip)
    root = fetch.fetch_dirti(server.url, progress=False)
    serve_legacy(server, nested_zip, checksum=f"md5:{md5(b'tampered')}")
    with pytest.raises(UserError, match="checksum"):
        fetch.fetch_dirti(server.url, force=True, progress=False)
    assert fetch.local_dirti() == root
    assert load_dirti(root).sha256 == demo_stimuli.sha256
    assert sorted(p.name for p in dataset_dir().iterdir()) == ["dirti"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_names_the_manual_alternative():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UserError) as err:
        fetch.fetch_dirti(url, progress=False)
    message = str(err.value)
    assert f"{url}{RECORD_PATH}" in message
    assert offers_the_manual_download(err.value) and fetch.DOI_URL in message
    assert "\n" not in message
    assert leftovers() == []


def test_http_error_on_the_file_leaves_nothing(server, nested_zip):
    serve_legacy(server, nested_zip)
    del server.routes[f"{RECORD_PATH}/files/DIRTI.zip/content"]
    with pytest.raises(UserError, match="404") as err:
        fetch.fetch_dirti(server.url, progress=False)
    assert "DIRTI.zip" in str(err.value) and offers_the_manual_download(err.value)
    assert leftovers() == []


@pytest.mark.parametrize("record, problem", [
    ({"files": []}, "no files"),
    ({"files": [{"key": "DIRTI.zip", "checksum": "sha256:abc", "links": {}}]}, "md5"),
    ({"files": [{"key": "../evil.zip", "checksum": "md5:" + "0" * 32}]}, "name"),
    ([1, 2], "not a JSON object"),
])
def test_unusable_record_answer(server, record, problem):
    server.routes[RECORD_PATH] = json.dumps(record).encode()
    with pytest.raises(UserError, match=problem):
        fetch.fetch_dirti(server.url, progress=False)
    assert leftovers() == []


def test_record_answer_that_is_not_json(server):
    server.routes[RECORD_PATH] = b"<html>maintenance</html>"
    with pytest.raises(UserError, match="JSON"):
        fetch.fetch_dirti(server.url, progress=False)


def test_archive_without_dirti_layout_leaves_nothing(server):
    serve_legacy(server, zip_bytes({"README.txt": b"images moved elsewhere"}))
    with pytest.raises(UserError, match="DIRTI layout"):
        fetch.fetch_dirti(server.url, progress=False)
    assert leftovers() == []


def test_corrupt_zip_is_a_user_error(server):
    serve_legacy(server, b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="unpack"):
        fetch.fetch_dirti(server.url, progress=False)
    assert leftovers() == []


@pytest.mark.parametrize("link, expected", [
    ("https://zenodo.org/api/records/167037/files/a.zip/content",
     "http://127.0.0.1:9/api/records/167037/files/a.zip/content"),
    ("http://127.0.0.1:9/x/a.zip?download=1", "http://127.0.0.1:9/x/a.zip?download=1"),
    ("/records/167037/files/a.zip", "http://127.0.0.1:9/records/167037/files/a.zip"),
    (None, "http://127.0.0.1:9/api/records/167037/files/a%20b.zip/content"),
])
def test_download_url_is_rooted_on_the_base(link, expected):
    key = "a b.zip" if link is None else "a.zip"
    assert fetch.download_url("http://127.0.0.1:9", link, key) == expected


def test_download_url_keeps_a_base_path_prefix():
    base = "http://mirror.test/zenodo"
    assert (fetch.download_url(base, "https://zenodo.org/api/records/1/files/a.zip", "a.zip")
            == "http://mirror.test/zenodo/api/records/1/files/a.zip")
    assert (fetch.download_url(base, "http://other.test/zenodo/api/x", "a.zip")
            == "http://mirror.test/zenodo/api/x")


@pytest.mark.parametrize("bad", ["ftp://zenodo.org", "zenodo.org", "http://"])
def test_bad_base_url(bad):
    with pytest.raises(UserError, match="base URL"):
        fetch.resolve_base_url(bad)


def test_default_base_url(monkeypatch):
    monkeypatch.delenv(fetch.BASE_URL_ENV, raising=False)
    assert fetch.resolve_base_url() == "https://zenodo.org"


def test_unwritable_cache_is_a_user_error(server, nested_zip, tmp_path, monkeypatch):
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder")
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(home))
    serve_legacy(server, nested_zip)
    with pytest.raises(UserError, match=f"cannot write DIRTI into {home}.*DIRTI_BENCH_HOME"):
        fetch.fetch_dirti(server.url, progress=False)
    assert home.read_text() == "not a folder"


# ---------------------------------------------------------------- CLI

def test_cli_fetch_prints_where_the_data_is(server, nested_zip, capsys):
    serve_legacy(server, nested_zip)
    assert main(["fetch", "--base-url", server.url]) == 0  # with the progress bar
    out = capsys.readouterr().out
    assert str(dataset_dir() / "dirti") in out


def test_cli_fetch_offline_is_one_error_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["fetch", "--base-url", url, "--no-progress"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: ")
    assert "point the data option at" in err_lines[0] and url in err_lines[0]
    assert err_lines[0].endswith("(command-line options --base-url, --data)")



def pooch_on_captured_stderr(monkeypatch):
    """pooch's handler bound the stderr of the moment pooch was imported; point it at the stderr
    this test captures (called in the test body: capsys replaces stderr for the call phase only)."""
    import sys

    import pooch

    for handler in pooch.get_logger().handlers:
        monkeypatch.setattr(handler, "stream", sys.stderr)


@pytest.mark.parametrize("failure", ["http-error", "checksum", "corrupt-zip"])
def test_cli_fetch_failure_prints_one_line_and_no_library_lines(server, nested_zip, capsys, failure, monkeypatch):
    """pooch's own 'Downloading file ...' line stays quiet when the download fails."""
    pooch_on_captured_stderr(monkeypatch)
    serve_legacy(server, nested_zip, checksum="md5:" + "0" * 32 if failure == "checksum" else None)
    if failure == "http-error":
        del server.routes[f"{RECORD_PATH}/files/DIRTI.zip/content"]
    if failure == "corrupt-zip":  # downloads fine, then pooch's Unzip logs and fails
        serve_legacy(server, b"PK\x03\x04 not really a zip")
    assert main(["fetch", "--base-url", server.url, "--no-progress"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_cli_fetch_success_still_shows_pooch_line(server, nested_zip, capsys, monkeypatch):
    pooch_on_captured_stderr(monkeypatch)
    serve_legacy(server, nested_zip)
    assert main(["fetch", "--base-url", server.url, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "Downloading data from" in captured.err and "DIRTI is in" in captured.out
