"""The one evaluation path, shared by ``dirti-bench run`` and ``pytest benchmarks``:

stimuli -> label spaces -> prompts -> encoder (+cache) -> evaluators -> results -> report.

``prepare`` loads and encodes; ``evaluate_scenario`` runs one scenario and always
checks its result (label-set consistency, or an alignment result's numbers
against its own predictions); ``write_run`` writes results, comparisons and the
report the same way for both callers.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contracts import EvalContext, Scenario, ScenarioResult
from .data.demo import ensure_demo
from .data.dirti import load_dirti
from .data.fetch import ensure_dirti
from .data.ratedset import is_rated_set, load_rated_set
from .data.stimuli import StimulusSet
from .encoding.cache import CachedEncoder
from .encoding.imaging import DEFAULT_DECODE, DecodedImages
from .encoding.models import TINY_MODEL, ClipEncoder, fp32_twin
from .encoding.precision import DEFAULT_PRECISION, category_agreement, describe
from .errors import UserError
from .evaluators.consistency import check_scenario_result
from .evaluators.registry import run_evaluator
from .labels import DEFAULT_THRESHOLD, check_threshold
from .paths import cache_home, check_cache_home, check_writable_dir, embedding_cache_dir
from .reporting.compare import comparisons_for
from .reporting.report import write_report
from .results import FEATURES_FILE, STIMULI_FILE, now_iso, versions, write_results
from .scenarios import (
    PromptFilePlan,
    alignment_scenarios,
    check_prompt_file_ids,
    prompt_file_plan,
    select,
)

DISGUST_TASKS = ("disgust", "disgust-binary")  # the tasks --threshold applies to
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"


@dataclass
class RunConfig:
    data: Path | None = None
    demo: bool = False
    model: str | None = None
    pretrained: str | None = None
    device: str = "auto"
    out: Path = Path("results")
    seed: int = 0
    scenarios: list[str] | None = None
    templates: list[Path] | None = None
    ratings: list[str] | None = None  # extra rating columns to align with (fear, valence, ...)
    threshold: float | str | None = None  # disgust threshold of every disgust task (None: the study's 5.0)
    n_raters: int | None = None  # raters behind each mean rating, for the alignment noise ceiling
    batch_size: int = 32
    num_workers: int | None = None
    decode: str = DEFAULT_DECODE  # imaging.DECODE_PATHS; "full" is open_clip's preprocessing exactly
    precision: str = DEFAULT_PRECISION  # bf16/int8 are opt-in and always checked against fp32
    progress: bool = True
    report: bool = True

    def resolved_model(self) -> tuple[str, str]:
        if self.demo:
            return self.model or TINY_MODEL, self.pretrained or "random"
        return self.model or DEFAULT_MODEL, self.pretrained or DEFAULT_PRETRAINED


def demo_dir(seed: int) -> Path:
    return cache_home() / "demo" / f"seed-{seed}"


def load_stimuli(cfg: RunConfig) -> StimulusSet:
    if cfg.data is not None:
        if is_rated_set(cfg.data):  # any rated image set: a ratings CSV + a dirti-bench.json sidecar
            return load_rated_set(cfg.data, note=lambda line: print(f"note: {line}", file=sys.stderr))
        return load_dirti(cfg.data)
    if cfg.demo:
        root = ensure_demo(demo_dir(cfg.seed), seed=cfg.seed)
        return load_dirti(root, name=f"dirti-demo-seed{cfg.seed}")
    try:
        root = ensure_dirti()
    except UserError as exc:  # the default path: say every way out, the offline demo included
        raise UserError(f"{exc}; or try --demo for an offline smoke run") from None
    return load_dirti(root)


def build_encoder(cfg: RunConfig, decoded: DecodedImages | None = None) -> CachedEncoder:
    model, pretrained = cfg.resolved_model()
    clip = ClipEncoder(model, pretrained, device=cfg.device, seed=cfg.seed, batch_size=cfg.batch_size,
                       num_workers=cfg.num_workers, progress=cfg.progress, decode=cfg.decode,
                       precision=cfg.precision, decoded=decoded)
    return CachedEncoder(clip, embedding_cache_dir())


def config_sha256(scenarios: Iterable[Scenario], cfg: RunConfig) -> str:
    """What a run's numbers depend on besides model and data: scenarios with their options, seed,
    decode path and precision (how ``--skip-existing`` knows a results directory is current)."""
    doc = {"scenarios": [[s.id, s.task, s.evaluator, s.options.to_dict()] for s in scenarios],
           "seed": cfg.seed, "decode": cfg.decode, "precision": cfg.precision}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def prepare(cfg: RunConfig, encoder=None, rating_columns=(), stimuli: StimulusSet | None = None) -> EvalContext:
    """Check the options, load the stimuli (unless given), then encode every image once (through the cache)."""
    encoder = encoder or build_encoder(cfg)  # validates model, weights and device before any data work
    check_cache_home()  # downloads, the demo set and embeddings go there
    stimuli = load_stimuli(cfg) if stimuli is None else stimuli
    for column in rating_columns:  # before the (possibly long) cold encode
        stimuli.require_rating(column)
    return encode_stimuli(stimuli, encoder, cfg.seed)


def encode_stimuli(stimuli: StimulusSet, encoder, seed: int) -> EvalContext:
    """Every image of ``stimuli`` encoded once (through the cache when ``encoder`` has one)."""
    paths = [s.path for s in stimuli.stimuli]
    shas = [s.sha256 for s in stimuli.stimuli]
    if isinstance(encoder, CachedEncoder) and all(shas):  # the loader already hashed every image
        features = encoder.encode_images(paths, keys=shas)
    else:
        features = encoder.encode_images(paths)
    clip = getattr(encoder, "encoder", encoder)
    if getattr(clip, "precision", DEFAULT_PRECISION) != DEFAULT_PRECISION:
        check_precision_agreement(clip, stimuli)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features, seed=seed)


def check_precision_agreement(clip: ClipEncoder, stimuli: StimulusSet) -> dict:
    """bf16/int8 against an fp32 twin on a spread sample of the images, category zero-shot with the
    study's prompts; printed and recorded in run info (``precision_check``). Runs every time, cache
    or not, so a reduced-precision result never comes without it."""
    clip.precision_check = category_agreement(fp32_twin(clip), clip, stimuli)
    print(describe(clip.precision_check), file=sys.stderr)
    return clip.precision_check


def run_info(ctx: EvalContext) -> dict:
    info = dict(ctx.encoder.run_info())
    info.update({
        "dataset": ctx.stimuli.name, "dataset_sha256": ctx.stimuli.sha256, "n_stimuli": len(ctx.stimuli),
        "disgust_column": ctx.stimuli.disgust_column,
        "seed": ctx.seed, "created": now_iso(), "versions": versions(),
        "forward_calls": ctx.encoder.forward_calls,
    })
    cache = getattr(ctx.encoder, "cache", None)
    if cache is not None:
        info["cache"] = {"dir": str(cache.dir), "hits": cache.hits, "misses": cache.misses,
                         "corrupt": cache.corrupt}
    return info


def feature_files(ctx: EvalContext) -> dict[str, bytes]:
    buf = io.BytesIO()
    np.savez_compressed(buf, features=ctx.image_features,
                        stimulus=np.array([s.id for s in ctx.stimuli.stimuli]))
    return {FEATURES_FILE: buf.getvalue(), STIMULI_FILE: ctx.stimuli.to_frame().to_csv(index=False).encode()}


def run_threshold(cfg: RunConfig) -> float | str | None:
    """``--threshold`` checked: a finite number or ``mean+1sd`` (None: each scenario's own)."""
    if cfg.threshold is None:
        return None
    try:
        return check_threshold(cfg.threshold)
    except UserError as exc:
        raise UserError(f"--threshold: {exc}") from None


def plan_scenarios(cfg: RunConfig, stimuli: StimulusSet | None = None) -> tuple[list[Scenario], list[PromptFilePlan]]:
    """The scenarios a run asked for, with the options its flags set, and what each prompt file made.

    Without ``stimuli`` only what needs no data is checked (ids, options, prompt files and the
    ids a template list makes); with them, per-class and pair files are matched to this set's
    label spaces and ratings too, and their ids checked, all before any image is encoded.
    """
    threshold = run_threshold(cfg)
    if cfg.n_raters is not None and cfg.n_raters < 2:
        raise UserError(f"--n-raters {cfg.n_raters} is too small; the split-half noise ceiling needs >= 2 raters")
    files = list(dict.fromkeys(Path(p).resolve() for p in cfg.templates or []))  # one file named twice runs once
    plans = [prompt_file_plan(path, stimuli, DEFAULT_THRESHOLD if threshold is None else threshold)
             for path in files]
    check_prompt_file_ids(plans)  # per-class and pair files join once the stimuli are known
    extra = [s for plan in plans for s in plan.scenarios]
    extra += [s for column in (cfg.ratings or []) for s in alignment_scenarios(column)]
    patterns = cfg.scenarios
    if patterns and any(not plan.resolved for plan in plans):
        return [], plans  # a pattern may name a scenario of a file that is matched once the data is loaded
    if patterns and extra:  # scenarios the user asked for by option are always run
        patterns = [*patterns, *(s.id for s in extra)]
    chosen = select(patterns, extra)
    if threshold is not None:
        chosen = [s.with_options(threshold=threshold) if s.task in DISGUST_TASKS else s for s in chosen]
    if cfg.n_raters is not None:
        chosen = [s.with_options(n_raters=cfg.n_raters, n_raters_source="--n-raters") if not s.is_classification
                  else s for s in chosen]
    return chosen, plans


def scenarios_for(cfg: RunConfig, stimuli: StimulusSet | None = None) -> list[Scenario]:
    """The scenarios of ``plan_scenarios``; unknown ids and bad options fail before any work."""
    return plan_scenarios(cfg, stimuli)[0]


def evaluate_scenario(scenario: Scenario, ctx: EvalContext) -> ScenarioResult:
    """Run one scenario and check its result; an inconsistent result never reaches a file."""
    result = run_evaluator(scenario, ctx)
    check_scenario_result(result, scenario, ctx)
    return result


def evaluate(scenarios: Iterable[Scenario], ctx: EvalContext) -> list[ScenarioResult]:
    return [evaluate_scenario(scenario, ctx) for scenario in scenarios]


def write_run(out: Path, ctx: EvalContext, results: list[ScenarioResult], extra_info: dict | None = None,
              report: bool = True) -> Path:
    """results.json, predictions.csv, features, comparisons and (optionally) the report into ``out``."""
    info = {**run_info(ctx), **(extra_info or {})}
    comparisons = comparisons_for(results, seed=ctx.seed)
    try:
        out = write_results(out, info, results, feature_files(ctx), comparisons=comparisons)
    except OSError as exc:  # checked writable at the start; a full disk can still stop it here
        raise UserError(f"cannot write the results into {out} ({exc.strerror or exc}); free some space or "
                        "pass another --out") from None
    if report:
        write_report([out], out)
    return out


def check_out(out: Path, option: str = "--out") -> Path:
    return check_writable_dir(out, f"results folder {option}", f"pass a writable folder as {option}")


def run(cfg: RunConfig, encoder=None) -> Path:
    plan_scenarios(cfg)  # ids, options and prompt files that need no data fail before the model loads
    check_out(cfg.out)  # before the model loads and anything is encoded
    encoder = encoder or build_encoder(cfg)
    check_cache_home()  # the demo set, downloads and embeddings go there
    stimuli = load_stimuli(cfg)
    chosen, plans = plan_scenarios(cfg, stimuli)  # prompt files matched to this set, still before encoding
    for plan in plans:
        print(plan.line(), file=sys.stderr)
    ctx = prepare(cfg, encoder, rating_columns=cfg.ratings or (), stimuli=stimuli)
    info = {"config_sha256": config_sha256(chosen, cfg)}
    if plans:
        info["prompt_files"] = [plan.to_json() for plan in plans]
    return write_run(cfg.out, ctx, evaluate(chosen, ctx), extra_info=info, report=cfg.report)
