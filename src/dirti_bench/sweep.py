"""Many models, one table: a sweep runs every model of a list over one stimulus set.

Model-independent work is done once per sweep: imports, loading and hashing the stimuli,
validating the list, and decoding + resizing each image once per distinct preprocessing
(``encoding.imaging.DecodedImages``). Each model is loaded once, encodes through the embedding
cache, writes a complete results directory ``OUT/runs/<model>__<weights>/`` and is released
before the next, so peak memory is one model's. A model that cannot run is one ``error:`` line;
the others still run. Unsharded, the sweep ends with ``OUT/leaderboard.csv`` and the comparison
report; shards leave that to ``dirti-bench report OUT``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .data.stimuli import file_sha256
from .encoding.imaging import DecodedImages
from .encoding.model_list import ModelSpec, check_model
from .encoding.models import WeightsSpec
from .errors import UserError
from .paths import check_cache_home
from .pipeline import (
    RunConfig,
    build_encoder,
    check_out,
    config_sha256,
    encode_stimuli,
    evaluate,
    load_stimuli,
    plan_scenarios,
    write_run,
)
from .reporting.runs_report import RUNS_DIR, write_comparison
from .results import PREDICTIONS_FILE, RESULTS_FILE, read_results


@dataclass
class SweepOutcome:
    out: Path
    done: list[ModelSpec] = field(default_factory=list)
    skipped: list[ModelSpec] = field(default_factory=list)  # already complete (--skip-existing)
    failed: list[tuple[ModelSpec, str]] = field(default_factory=list)
    report: Path | None = None  # the comparison report, when this process wrote one

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0


def run_dir(out: Path, spec: ModelSpec) -> Path:
    return Path(out) / RUNS_DIR / spec.slug


def _weights_identity(spec: ModelSpec) -> str | None:
    weights = WeightsSpec.parse(spec.pretrained)
    return file_sha256(Path(weights.value)) if weights.kind == "file" else None


def is_complete(folder: Path, spec: ModelSpec, dataset_sha256: str, config: str) -> bool:
    """Whether ``folder`` holds this model's finished run on the same data, scenarios and options."""
    if not (folder / RESULTS_FILE).is_file() or not (folder / PREDICTIONS_FILE).is_file():
        return False
    try:
        run = read_results(folder)["run"]
    except UserError:
        return False  # unreadable: run it again
    same = (run.get("model") == spec.model and run.get("pretrained") == WeightsSpec.parse(spec.pretrained).value
            and run.get("dataset_sha256") == dataset_sha256 and run.get("config_sha256") == config)
    file_sha = _weights_identity(spec) if same else None
    return same and (file_sha is None or run.get("weights_sha256") == file_sha)


def run_sweep(cfg: RunConfig, specs: list[ModelSpec], skip_existing: bool = False, merge: bool = True,
              reference: str | None = None, say: Callable[[str], None] | None = None) -> SweepOutcome:
    """Run ``specs`` (already sharded) into ``cfg.out``; ``merge`` writes the leaderboard and report."""
    say = say or (lambda line: print(line, file=sys.stderr))
    outcome = SweepOutcome(Path(cfg.out))
    plan_scenarios(cfg)  # unknown scenario ids, bad options and prompt files fail before any work
    check_out(cfg.out)
    check_cache_home()
    problems = {spec.slug: check_model(spec) for spec in specs}  # every line, before any image is encoded
    for spec in specs:
        if problems[spec.slug]:
            say(f"error: {problems[spec.slug]}")
    stimuli = load_stimuli(cfg)  # loaded and hashed once for every model
    for column in cfg.ratings or ():
        stimuli.require_rating(column)
    chosen, plans = plan_scenarios(cfg, stimuli)  # prompt files matched to this set, before any encoding
    for plan in plans:
        say(plan.line())
    prompt_files = {"prompt_files": [plan.to_json() for plan in plans]} if plans else {}
    config = config_sha256(chosen, cfg)
    decoded = DecodedImages()
    for number, spec in enumerate(specs, 1):
        if problems[spec.slug]:
            outcome.failed.append((spec, problems[spec.slug]))
            continue
        folder = run_dir(cfg.out, spec)
        if skip_existing and is_complete(folder, spec, stimuli.sha256, config):
            say(f"model {number}/{len(specs)}: {spec.label}: complete in {folder}, skipped (--skip-existing)")
            outcome.skipped.append(spec)
            continue
        say(f"model {number}/{len(specs)}: {spec.label}")
        encoder = None
        try:
            encoder = build_encoder(replace(cfg, model=spec.model, pretrained=spec.pretrained), decoded)
            ctx = encode_stimuli(stimuli, encoder, cfg.seed)
            results = evaluate(chosen, ctx)
            write_run(folder, ctx, results, report=cfg.report,
                      extra_info={"config_sha256": config, "sweep": {"model_source": spec.source}, **prompt_files})
            outcome.done.append(spec)
        except UserError as exc:
            message = f"{spec.label} ({spec.source}): {exc}"
            say(f"error: {message}")
            outcome.failed.append((spec, message))
        finally:
            if encoder is not None:
                encoder.encoder.release()  # peak memory: one model, not the sum
    if merge and (outcome.done or outcome.skipped):
        written = write_comparison([cfg.out], cfg.out, reference=reference, report=cfg.report)
        outcome.report = written if cfg.report else None
    return outcome
