"""Report blocks and their two renderings: Markdown (tabulate) and self-contained HTML."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Banner:
    """A warning that must not be missed (smoke runs, dropped classes)."""

    text: str


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # cells already formatted as strings


@dataclass(frozen=True)
class Links:
    """A list of links to files beside the report (paths relative to it)."""

    items: tuple[tuple[str, str], ...]  # (text, relative path)


@dataclass(frozen=True)
class Drawing:
    """A figure not drawn yet: the name of its builder in ``reporting.figures`` and the builder's
    (picklable) arguments. The report collects its figures as drawings and draws them all at once,
    in worker processes (``figures.draw_all``): building blocks stays cheap and matplotlib-free."""

    builder: str
    args: tuple = ()
    kwargs: dict | None = None


@dataclass(frozen=True)
class Figure:
    file: str  # relative to the report
    png: bytes | Drawing  # a Drawing until ``figure_cache.draw_blocks`` draws it
    caption: str


def _cells(frame: pd.DataFrame) -> tuple[list[list[str]], list[str]]:
    return frame.astype(str).values.tolist(), [str(c) for c in frame.columns]


def to_markdown(title: str, blocks: list) -> str:
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Banner):
            out += [f"> **⚠ {block.text}**", ""]
        elif isinstance(block, Table):
            rows, headers = _cells(block.frame)
            # disable_numparse: cells are preformatted ("0.550 [0.49, 0.61]"); keep them verbatim
            out += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
        elif isinstance(block, Links):
            out += [f"- [{text}]({href})" for text, href in block.items] + [""]
        elif isinstance(block, Figure):
            out += [f"![{block.caption}]({block.file})", "", f"*{block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f2f2f2}
.banner{background:#fff0f0;border:3px solid #c00;color:#900;font-weight:bold;padding:0.8em;margin:1em 0}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-style:italic;color:#555}
"""


def to_html(title: str, blocks: list) -> str:
    """One file: styles inline, figures embedded as base64 PNG (no external references)."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Banner):
            out.append(f'<div class="banner">⚠ {html.escape(block.text)}</div>')
        elif isinstance(block, Table):
            rows, headers = _cells(block.frame)
            out.append(tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True))
        elif isinstance(block, Links):
            items = "".join(f'<li><a href="{html.escape(href, quote=True)}">{html.escape(text)}</a></li>'
                            for text, href in block.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
