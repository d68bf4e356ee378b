"""``dirti-bench fetch``: download DIRTI (Zenodo record 167037) into the cache."""

from __future__ import annotations

from ..data.fetch import BASE_URL_ENV, DEFAULT_BASE_URL, fetch_dirti


def add_arguments(p) -> None:
    p.add_argument("--base-url", metavar="URL",
                   help=f"Zenodo server (default ${BASE_URL_ENV} or {DEFAULT_BASE_URL})")
    p.add_argument("--force", action="store_true", help="download again even if a complete copy is cached")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")


def run(args) -> int:
    root = fetch_dirti(args.base_url, force=args.force, progress=not args.no_progress)
    print(f"DIRTI is in {root} (use it with: dirti-bench run --data \"{root}\")")
    return 0
