"""Model lists for sweeps: the ``--models FILE`` format, its validation, and cluster-array shards.

One ``MODEL PRETRAINED`` pair per line, as ``--model``/``--pretrained`` take them::

    # architecture   weights (open_clip tag, checkpoint path, hf-hub:ORG/REPO, or random)
    ViT-B-32         openai
    ViT-B-32         laion2b_s34b_b79k
    ViT-B-16         /data/ckpt/my-finetune.pt
    ViT-B-16-SigLIP  hf-hub:timm/ViT-B-16-SigLIP

``#`` starts a comment; blank lines are ignored; a path with spaces goes in quotes.
Relative checkpoint paths are read relative to the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .models import (
    TINY_MODEL,
    WeightsSpec,
    known_model,
    looks_like_checkpoint,
    register_model_configs,
)

MAX_SLUG = 120  # characters of a run folder's name
SHARD_ENV = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: an architecture and its weights, and where the pair was written."""

    model: str
    pretrained: str
    source: str = "--model/--pretrained"  # "FILE:LINE" for a models file
    slug: str = ""  # the results folder name under OUT/runs/, unique within the list

    @property
    def label(self) -> str:
        return f"{self.model} {self.pretrained}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def _weights_slug(pretrained: str) -> str:
    """Tags and hub ids as written; a checkpoint by its file name (the full path only on a clash)."""
    if pretrained.startswith("hf-hub:"):
        return _slug(pretrained[len("hf-hub:"):])
    if looks_like_checkpoint(pretrained):
        return _slug(Path(pretrained).name)
    return _slug(pretrained)


def _clashing(names: list[str]) -> list[bool]:
    """Which names another one shares, letter case aside (a case-insensitive disk holds one folder)."""
    folded = [n.casefold() for n in names]
    return [folded.count(n) > 1 for n in folded]


def _identity_hash(spec: ModelSpec) -> str:
    return hashlib.sha256(f"{spec.model}\n{spec.pretrained}".encode()).hexdigest()[:8]


def with_slugs(specs: list[ModelSpec]) -> list[ModelSpec]:
    """``<model>__<weights>`` per spec; two checkpoints with one file name fall back to their paths,
    and names that still clash (paths that differ only in characters a slug drops, ``ck a.pt`` and
    ``ck-a.pt``) get a short hash of model and weights: one run folder per model, never shared."""
    names = [f"{_slug(s.model)}__{_weights_slug(s.pretrained)}" for s in specs]
    names = [f"{_slug(spec.model)}__{_slug(spec.pretrained)}" if clash else name
             for spec, name, clash in zip(specs, names, _clashing(names), strict=True)]
    names = [f"{name}-{_identity_hash(spec)}" if clash else name
             for spec, name, clash in zip(specs, names, _clashing(names), strict=True)]
    # a folder name longer than a file system allows (255 bytes) is cut, and the hash keeps it unique
    names = [name if len(name) <= MAX_SLUG else f"{name[:MAX_SLUG - 9]}-{_identity_hash(spec)}"
             for spec, name in zip(specs, names, strict=True)]
    return [ModelSpec(spec.model, spec.pretrained, spec.source, name) for spec, name in zip(specs, names, strict=True)]


def parse_models_file(path: Path) -> list[ModelSpec]:
    """Every line of ``path`` as a ModelSpec; a malformed line is one error naming file and line."""
    path = Path(path).expanduser()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise UserError(f"models file {path} not found; write one 'MODEL PRETRAINED' pair per line "
                        "(start one with: dirti-bench models > models.txt)") from None
    except (IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"cannot read models file {path} ({exc.__class__.__name__}); pass a UTF-8 text file "
                        "with one 'MODEL PRETRAINED' pair per line") from None
    specs, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UserError(f"models file {where}: {exc}; close the quote or remove it") from None
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(f"models file {where}: expected 'MODEL PRETRAINED', got {line.strip()!r}; "
                            "quote a path that holds spaces")
        model, pretrained = fields
        if not pretrained.startswith("hf-hub:") and looks_like_checkpoint(pretrained):
            candidate = Path(pretrained).expanduser()
            pretrained = str(candidate if candidate.is_absolute() else (path.parent / candidate))
        key = (model, pretrained)
        if key in seen:
            raise UserError(f"models file {where}: {model} {pretrained} is already listed on line {seen[key]}; "
                            "list each model once")
        seen[key] = number
        specs.append(ModelSpec(model, pretrained, where))
    if not specs:
        raise UserError(f"models file {path} lists no model; write one 'MODEL PRETRAINED' pair per line")
    return with_slugs(specs)


def check_model(spec: ModelSpec) -> str | None:
    """Why ``spec`` cannot run, found without loading it (None when it may): an unknown
    architecture, a missing checkpoint file, a tag open_clip does not know for the architecture or
    trained with another activation (``checkpoints.tag_mismatch``)."""
    try:
        weights = WeightsSpec.parse(spec.pretrained)
    except UserError as exc:
        return f"{spec.source}: {exc}"
    if weights.kind == "hf-hub":
        return None
    if not known_model(spec.model):
        return (f"{spec.source}: unknown model {spec.model!r}; pick one of open_clip.list_models() "
                f"(e.g. ViT-B-32, {TINY_MODEL}) or run 'dirti-bench models'")
    if weights.kind == "tag":
        import open_clip  # only a tag needs open_clip's own table

        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        if spec.pretrained not in tags:
            known = ", ".join(tags) or "none"
            return (f"{spec.source}: open_clip has no {spec.pretrained!r} weights for {spec.model} "
                    f"(known: {known}); fix the tag or pass a checkpoint path")
        from .checkpoints import suggestion, tag_mismatch

        mismatch = tag_mismatch(spec.model, spec.pretrained)
        if mismatch:  # the QuickGELU mismatch open_clip only warns about: OpenAI's weights in a GELU architecture
            return f"{spec.source}: {spec.model} {spec.pretrained}: {mismatch}; {suggestion(spec.model, mismatch)}"
    return None


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1-based) -> (I, N)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UserError(f"shard {text!r} must be I/N with 1 <= I <= N, e.g. 2/4", "shard")
    return int(match[1]), int(match[2])


def shard_from_env(env: dict | None = None) -> tuple[int, int] | None:
    """The Slurm job-array slice, if this process is one: task id relative to the array's first id."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    try:
        task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 1 if task >= 1 else 0))
    except ValueError:
        raise UserError("SLURM_ARRAY_TASK_ID/_COUNT/_MIN are not integers; give the shard as I/N instead",
                        "shard") from None
    index = task - first + 1
    if not 1 <= index <= count:
        raise UserError(f"Slurm array task {task} (first {first}) is outside {count} tasks; "
                        "submit the array with task ids 1 to N or give the shard as I/N", "shard")
    return index, count


def select_shard(specs: list[ModelSpec], shard: tuple[int, int] | None) -> list[ModelSpec]:
    """The I-th of N disjoint slices (round robin, so slow models spread over the shards)."""
    if shard is None:
        return list(specs)
    index, count = shard
    return list(specs[index - 1::count])


def pretrained_lines() -> list[str]:
    """Every (architecture, tag) pair open_clip knows and that fits (``checkpoints.tag_mismatch``), in the
    ``--models`` file format; first the suite's own seeded test model with random weights (it has no
    pretrained tag)."""
    register_model_configs()
    import open_clip

    from .checkpoints import tag_mismatch

    # a pair open_clip lists but whose tag was trained with another activation (ViT-B-32 openai) is left out:
    # it would be refused; its -quickgelu twin is listed
    pairs = [(TINY_MODEL, "random"), *((m, t) for m, t in open_clip.list_pretrained() if not tag_mismatch(m, t))]
    width = max(len(model) for model, _ in pairs)
    return [f"{model:<{width}}  {tag}" for model, tag in pairs]
