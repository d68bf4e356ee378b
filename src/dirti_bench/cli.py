"""``dirti-bench``: a flat CLI, one module per subcommand in ``dirti_bench.commands``.

Every user error ends as one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .allocator import keep_freed_memory
from .errors import LabelConsistencyError, UserError, one_line

DESCRIPTION = """\
Benchmark CLIP-family models on the DIRTI disgust photos (or any rated image set): how well
they recover the photos' categories and people's disgust ratings, from zero-shot prompts to
linear probes, with 95% CIs, a report, and a drift check against a baseline."""

EPILOG = """\
first steps:
  dirti-bench run --demo                 offline smoke run: generated photos, a tiny random model
  dirti-bench run --data PATH/TO/DIRTI   DIRTI with ViT-B-32 / openai weights
  dirti-bench run --data PATH/TO/SET     any rated set with a dirti-bench.json sidecar
  dirti-bench scenarios                  what a run evaluates
  dirti-bench COMMAND --help             every option of a command"""

COMMANDS = {
    "run": "Encode a stimulus set once and run the evaluation scenarios: summary, results and report.",
    "scenarios": "List the scenarios a run evaluates (and those --templates / --ratings would add).",
    "report": "Render report.md / report.html from one or more results directories (side by side).",
    "check-drift": "Compare results with a committed baseline; exit 1 on drift.",
    "make-demo": "Write the small generated DIRTI-format demo set into a folder.",
    "fetch": "Download DIRTI from its Zenodo record into the cache.",
    "bench": "Measure encoding throughput, the first and warm runs, a cold model sweep, and memory.",
    "models": "List open_clip's models and pretrained weights, in the --models file format.",
}


def _module(name: str):
    return importlib.import_module(f"dirti_bench.commands.{name.replace('-', '_')}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option that has a default says which."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == argparse.SUPPRESS
                or action.option_strings == [] and action.nargs in ("*", "+")):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option ends like every other user error: one ``error:`` line, exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {one_line(message)}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dirti-bench", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"dirti-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _module(name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text),
                           epilog=getattr(module, "EPILOG", None))
        module.add_arguments(p)
    return parser


def flag_hint(exc: UserError) -> str:
    """The command-line flag(s) of the setting(s) a library error names (``option="n_raters"`` ->
    ``--n-raters``; a tuple of options names each flag)."""
    option = getattr(exc, "option", None)
    if not option:
        return ""
    names = (option,) if isinstance(option, str) else tuple(option)
    flags = ["--" + name.replace("_", "-") for name in names]
    flags = [flag for flag in flags if flag not in str(exc)]
    if not flags:
        return ""
    return f" (command-line option{'s' if len(flags) > 1 else ''} {', '.join(flags)})"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop, ``kill``): unwound like Ctrl-C, so staging folders and
    temporary files are removed on the way out instead of left behind by a hard kill."""


def _raise_terminated(signum, _frame):
    raise Terminated()


def _terminate_like_ctrl_c() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _raise_terminated)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # before any model: CPU forwards reuse freed pages instead of faulting new ones
    _terminate_like_ctrl_c()
    try:
        return int(_module(args.command).run(args) or 0)
    except UserError as exc:
        print(f"error: {one_line(exc)}{flag_hint(exc)}", file=sys.stderr)
        return 2
    except LabelConsistencyError as exc:  # a result failed its check: a bug, never a file
        print(f"error: internal check failed, nothing was written: {one_line(exc)}; please report this", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:  # a command may say what it had written (see commands/run.py)
        terminated = isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated)
        print(f"error: {'terminated' if terminated else 'interrupted'}; {one_line(exc) or 'nothing was written'}",
              file=sys.stderr)
        return 143 if terminated else 130


if __name__ == "__main__":
    sys.exit(main())
