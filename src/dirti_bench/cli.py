"""``dirti-bench``: a flat CLI, one module per subcommand in ``dirti_bench.commands``.

Every user error ends as one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import LabelConsistencyError, UserError

COMMANDS = {
    "run": "Encode a stimulus set and run the evaluation scenarios.",
    "make-demo": "Write a small procedurally generated DIRTI-format set.",
    "fetch": "Download DIRTI from its Zenodo record into the cache.",
    "report": "Render report.md / report.html from results directories.",
    "check-drift": "Compare results with a committed baseline; exit 1 on drift.",
    "bench": "Measure encoding throughput, warm re-runs and memory.",
    "scenarios": "List the registered scenarios.",
    "models": "List the open_clip models and weights, in the --models file format.",
}


def _module(name: str):
    return importlib.import_module(f"dirti_bench.commands.{name.replace('-', '_')}")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option ends like every other user error: one ``error:`` line, exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dirti-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _module(name).add_arguments(p)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LabelConsistencyError as exc:  # a result failed its check: a bug, never a file
        print(f"error: internal check failed, nothing was written: {exc}; please report this", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
