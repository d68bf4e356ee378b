"""DIRTI download from its Zenodo record (167037) into the cache, with pooch.

The file list and md5 checksums come from the Zenodo records API; pooch
downloads and verifies each file. Everything is staged in a temp folder beside
the target and renamed into place at the end, so a failure (offline, HTTP
error, wrong checksum, unexpected archive layout) leaves nothing behind, and a
``.complete`` marker written last makes a second call a no-op.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pooch
import requests

from .. import jsonio
from ..atomic import write_text
from ..errors import UserError
from ..paths import HOME_ENV, dataset_dir
from ..quiet import held_back
from .dirti import IMAGE_FOLDER, RATINGS_FILE, load_dirti
from .stimuli import list_images, normalise_name

RECORD_ID = "167037"
DOI_URL = "https://doi.org/10.5281/zenodo.167037"
DEFAULT_BASE_URL = "https://zenodo.org"
BASE_URL_ENV = "DIRTI_BENCH_ZENODO_URL"
COMPLETE_MARKER = ".complete"
TIMEOUT_S = (15, 60)  # (connect, read) seconds: fail fast when offline, tolerate a slow server
MANUAL = (f"or download DIRTI by hand from {DOI_URL}, unzip it and point the data option at "
          "the folder holding 'DIRTI Database'")
# Archive clutter that is never data (macOS resource forks).
JUNK_DIRS = {"__MACOSX"}


@dataclass(frozen=True)
class RemoteFile:
    key: str  # file name in the record
    url: str
    md5: str  # "md5:<hex>", as pooch's known_hash expects
    size: int | None = None


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url``, else ``$DIRTI_BENCH_ZENODO_URL``, else https://zenodo.org (no trailing slash)."""
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise UserError(f"Zenodo base URL {base!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL}", "base_url")
    return base.rstrip("/")


def record_api_url(base: str) -> str:
    return f"{base}/api/records/{RECORD_ID}"


def dirti_root() -> Path:
    return dataset_dir() / "dirti"


def local_dirti() -> Path | None:
    """The unpacked DIRTI copy in the cache, if a previous fetch completed."""
    root = dirti_root()
    return root if (root / COMPLETE_MARKER).is_file() else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _unreachable(url: str, exc: BaseException) -> UserError:
    return UserError(f"cannot download {url} ({_one_line(exc)}); check the network or "
                     f"the Zenodo base URL (base_url or ${BASE_URL_ENV}), {MANUAL}", ("base_url", "data"))


# ---------------------------------------------------------------- records API

def download_url(base: str, link: str | None, key: str) -> str:
    """Where to download ``key``: the record's link, re-rooted on ``base`` when it names another host.

    Zenodo answers with absolute links to zenodo.org; rebuilding them on the
    base keeps an overridden base (a mirror, a test server) in charge.
    """
    if not link:
        return f"{base}/api/records/{RECORD_ID}/files/{quote(key)}/content"
    parts, base_parts = urlsplit(link), urlsplit(base)
    if parts.netloc and (parts.scheme, parts.netloc) == (base_parts.scheme, base_parts.netloc):
        return link
    path = parts.path if parts.path.startswith("/") else f"/{parts.path}"
    base_path = base_parts.path.rstrip("/")
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path):]  # a link already under the base's prefix
    return f"{base}{path}" + (f"?{parts.query}" if parts.query else "")


def _entries(record: dict) -> list[dict]:
    files = record.get("files")
    if isinstance(files, dict):  # InvenioRDM form: {"enabled": ..., "entries": {key: {...}} or [...]}
        files = files.get("entries")
        if isinstance(files, dict):
            files = [{"key": k, **v} if isinstance(v, dict) else v for k, v in files.items()]
    if not isinstance(files, list) or not files:
        raise ValueError("it lists no files")
    return files


def parse_record(record: dict, base: str) -> list[RemoteFile]:
    """Remote files of a records-API answer (legacy ``links.self`` or InvenioRDM ``links.content``)."""
    out = []
    for entry in _entries(record):
        if not isinstance(entry, dict):
            raise ValueError(f"file entry {entry!r} is not an object")
        key = str(entry.get("key") or entry.get("filename") or "")
        if not key or key != Path(key).name or key.startswith("."):
            raise ValueError(f"file entry has no usable name ({key!r})")
        checksum = str(entry.get("checksum") or "")
        algo, _, digest = checksum.partition(":")
        if algo.lower() != "md5" or len(digest) != 32:
            raise ValueError(f"file {key!r} has no md5 checksum (got {checksum!r})")
        links = entry.get("links") or {}
        if not isinstance(links, dict):
            raise ValueError(f"file {key!r} has 'links' {links!r}, not an object")
        # InvenioRDM: links.self is the metadata, links.content the bytes; legacy: links.self is the bytes.
        link = links.get("content") or links.get("self") or links.get("download")
        if link is not None and not isinstance(link, str):
            raise ValueError(f"file {key!r} has a download link {link!r} that is not a URL")
        size = entry.get("size")
        out.append(RemoteFile(key, download_url(base, link, key), f"md5:{digest.lower()}",
                              int(size) if isinstance(size, int | float) else None))
    return out


def record_files(base: str) -> list[RemoteFile]:
    url = record_api_url(base)
    try:
        response = requests.get(url, timeout=TIMEOUT_S, headers={"Accept": "application/json"})
        response.raise_for_status()
    except requests.RequestException as exc:
        raise _unreachable(url, exc) from None
    try:
        record = jsonio.loads(response.content)
    except ValueError as exc:  # the body is not JSON (a proxy's or maintenance page)
        raise UserError(f"Zenodo records API {url} did not answer JSON ({_one_line(exc)}); "
                        f"check the Zenodo base URL (base_url or ${BASE_URL_ENV}), {MANUAL}", ("base_url", "data")) from None
    try:
        if not isinstance(record, dict):
            raise ValueError("the answer is not a JSON object")
        return parse_record(record, base)
    except ValueError as exc:
        raise UserError(f"Zenodo record {url} is not usable: {exc}; {MANUAL}", "data") from None


# ---------------------------------------------------------------- download + unpack

def _download(remote: RemoteFile, folder: Path, progress: bool) -> Path:
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT_S)
    try:
        return Path(pooch.retrieve(remote.url, known_hash=remote.md5, fname=remote.key,
                                   path=folder, downloader=downloader))
    except requests.RequestException as exc:
        raise _unreachable(remote.url, exc) from None
    except ValueError as exc:  # pooch: hash mismatch
        raise UserError(f"checksum mismatch for {remote.url} ({_one_line(exc)}); nothing was kept; "
                        f"retry later, {MANUAL}", "data") from None


def _unpack(archive: Path, remote: RemoteFile, into: Path) -> None:
    """A zip goes into ``into/<stem>/``; any other file is copied as is."""
    if archive.suffix.lower() == ".zip":
        try:
            pooch.Unzip(extract_dir=str(into / archive.stem))(str(archive), "download", None)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserError(f"cannot unpack {remote.url} ({_one_line(exc)}); {MANUAL}", "data") from None
    else:
        shutil.copy2(archive, into / archive.name)


def _walk(root: Path):
    """Visible paths under ``root``, skipping archive clutter."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(part in JUNK_DIRS or part.startswith(".") for part in rel):
            continue
        yield path


def _find_image_folder(root: Path) -> Path:
    dirs = [p for p in _walk(root) if p.is_dir()]
    named = [p for p in dirs if normalise_name(p.name) == normalise_name(IMAGE_FOLDER)]
    if len(named) == 1:
        return named[0]
    with_images = [p for p in dirs if list_images(p)]
    if len(with_images) == 1:
        return with_images[0]
    raise ValueError(f"expected one image folder '{IMAGE_FOLDER}', found "
                     f"{[str(p.relative_to(root)) for p in named or with_images] or 'none'}")


def _find_ratings(root: Path) -> Path:
    tables = [p for p in _walk(root) if p.is_file() and p.suffix.lower() in {".xlsx", ".csv"}]
    named = [p for p in tables if normalise_name(p.stem) == normalise_name(Path(RATINGS_FILE).stem)]
    chosen = named or tables
    if len(chosen) != 1:
        raise ValueError(f"expected one ratings table {RATINGS_FILE}, found "
                         f"{[str(p.relative_to(root)) for p in chosen] or 'none'}")
    return chosen[0]


def arrange(unpacked: Path, dest: Path) -> Path:
    """Move the image folder and the ratings table to the layout ``load_dirti`` expects.

    The record's zip may nest them one or more folders down.
    """
    ratings = _find_ratings(unpacked)
    images = _find_image_folder(unpacked)
    dest.mkdir()
    # Ratings first: the table may sit inside the image folder.
    shutil.move(str(ratings), dest / f"{Path(RATINGS_FILE).stem}{ratings.suffix.lower()}")
    shutil.move(str(images), dest / IMAGE_FOLDER)
    return dest


def _replace_dir(new: Path, target: Path, staging: Path) -> None:
    """Swap ``new`` in for ``target``; the old copy is moved into ``staging`` (deleted with it).

    If the second move fails, the old copy goes back, so a failed ``--force`` keeps the cache as it was.
    """
    previous = staging / "previous"
    if target.exists():
        os.replace(target, previous)
    try:
        os.replace(new, target)
    except OSError:
        if previous.exists():
            os.replace(previous, target)
        raise


def fetch_dirti(base_url: str | None = None, force: bool = False, progress: bool = True) -> Path:
    """Download, verify and unpack DIRTI into ``<DIRTI_BENCH_HOME>/data/dirti``; return that folder."""
    found = local_dirti()
    if found is not None and not force:
        return found
    base = resolve_base_url(base_url)
    remotes = record_files(base)
    target = dirti_root()
    created = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    staging, done = None, False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".dirti-fetch-", dir=target.parent))
        with held_back(pooch.get_logger()):  # pooch's "Downloading ..." lines show only if the whole fetch works
            _fetch_into(staging, base, remotes, progress)
        marker = {"record": RECORD_ID, "base_url": base,
                  "files": [{"key": r.key, "url": r.url, "checksum": r.md5} for r in remotes]}
        # The marker goes in before the swap, so the copy appears complete or not at all; a copy that
        # another process (a shard on the same cache home) completed meanwhile is kept, not swapped.
        write_text(staging / "dirti" / COMPLETE_MARKER, json.dumps(marker, indent=1) + "\n")
        if force or local_dirti() is None:
            _replace_dir(staging / "dirti", target, staging)
        done = True
    except OSError as exc:  # disk full, permissions (network errors are UserErrors by now)
        raise UserError(f"cannot write DIRTI into {target.parent} ({_one_line(exc)}); free some space "
                        f"or point {HOME_ENV} to a writable folder") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not done:  # leave the cache as it was: drop the folders this call created
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return target


def _fetch_into(staging: Path, base: str, remotes: list[RemoteFile], progress: bool) -> Path:
    """Download and verify every file, unpack, and arrange ``staging/dirti`` for the loader."""
    downloads, unpacked = staging / "downloads", staging / "unpacked"
    downloads.mkdir()
    unpacked.mkdir()
    for remote in remotes:
        _unpack(_download(remote, downloads, progress), remote, unpacked)
    try:
        ready = arrange(unpacked, staging / "dirti")
        load_dirti(ready, verify=False)  # refuse a layout the loader would reject
    except (ValueError, UserError) as exc:
        raise UserError(f"Zenodo record {record_api_url(base)} did not unpack into a DIRTI layout "
                        f"({_one_line(exc)}); {MANUAL}", "data") from None
    return ready


def ensure_dirti(base_url: str | None = None) -> Path:
    """The cached DIRTI copy, fetched first if missing (``dirti-bench run`` without --data)."""
    return fetch_dirti(base_url)
