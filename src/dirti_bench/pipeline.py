"""The one evaluation path, shared by ``dirti-bench run`` and ``pytest benchmarks``:

stimuli -> label spaces -> prompts -> encoder (+cache) -> evaluators -> results -> report.

``prepare`` loads and encodes (``run`` first checks which scenarios the data
supports, before encoding); ``evaluate_scenario`` runs one scenario and always
checks its result (label-set consistency, or an alignment result's numbers
against its own predictions); ``write_run`` writes results, comparisons and the
report into a folder beside the output and swaps it in whole, the same way for
both callers. What the run says on the terminal goes through a ``Reporter``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .atomic import StagedDir
from .constraints import (
    Boolean,
    Interval,
    IsNone,
    ListOf,
    PathLike,
    StrOptions,
    Text,
    check_fields,
    param,
)
from .contracts import SEED, THRESHOLD, EvalContext, Scenario, ScenarioResult
from .data.demo import ensure_demo
from .data.dirti import load_dirti
from .data.fetch import ensure_dirti
from .data.ratedset import is_rated_set, load_rated_set
from .data.stimuli import DISGUST_RATING, StimulusSet
from .encoding.cache import CachedEncoder, text_key
from .encoding.imaging import (
    DECODE_PATHS,
    DECODE_POOLS,
    DEFAULT_DECODE,
    DEFAULT_DECODE_POOL,
    DEFAULT_GPU_DECODE,
    GPU_DECODE,
    DecodedImages,
)
from .encoding.layers import LAYER_MODES, LAYERS_CHOICES
from .encoding.models import (
    BATCH_SIZE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEVICES,
    TINY_MODEL,
    ClipEncoder,
    fp32_twin,
)
from .encoding.precision import DEFAULT_PRECISION, PRECISIONS, category_agreement, describe
from .errors import ScenarioNotRunnable, UserError
from .evaluators.consistency import check_scenario_result
from .evaluators.registry import check_runnable, run_evaluator, scenario_texts
from .evaluators.workers import FeatureWorkers, evaluation_workers, longest_first
from .labels import DEFAULT_THRESHOLD
from .paths import cache_home, check_cache_home, check_writable_dir, embedding_cache_dir
from .reporting.compare import comparisons_for
from .reporting.console import Reporter, skipped_lines
from .reporting.projection import PROJECTIONS
from .reporting.report import write_report
from .results import (
    FEATURES_FILE,
    RESULTS_FILE,
    STIMULI_FILE,
    ids_are_integers,
    layer_frames,
    now_iso,
    read_results,
    results_document,
    typed_ids,
    versions,
    write_results,
)
from .scenarios import (
    LAYER_CONTROLS,
    PromptFilePlan,
    alignment_ids,
    alignment_scenarios,
    check_prompt_file_ids,
    classifier_control_scenarios,
    data_scenarios,
    knn_layer_scenarios,
    layer_scenarios,
    matches_any,
    probe_layer_scenarios,
    prompt_file_plan,
    select,
)

DISGUST_TASKS = ("disgust", "disgust-binary")  # the tasks a run's threshold applies to
_NAMES = ListOf((Text(),), min_len=1, container=list)


@dataclass
class RunConfig:
    """What a run does; every field is checked against its constraints when the config is made."""

    data: Path | None = param(None, IsNone(), PathLike())
    demo: bool = param(False, Boolean())
    model: str | None = param(None, IsNone(), Text())
    pretrained: str | None = param(None, IsNone(), Text())
    device: str = param("auto", StrOptions(DEVICES))
    out: Path = param(Path("results"), PathLike())
    seed: int = param(0, *SEED)
    scenarios: list[str] | None = param(None, IsNone(), _NAMES)
    templates: list[Path] | None = param(None, IsNone(), ListOf((PathLike(),), min_len=1, container=list))
    ratings: list[str] | None = param(None, IsNone(), _NAMES)  # extra rating columns to align with (fear, ...)
    # disgust threshold of every disgust task (None: each scenario's own, the study's 5.0)
    threshold: float | str | None = param(None, IsNone(), *THRESHOLD)
    # raters behind each mean rating, for the alignment noise ceiling (split halves need two)
    n_raters: int | None = param(None, IsNone(), Interval(int, 2))
    batch_size: int = param(DEFAULT_BATCH_SIZE, *BATCH_SIZE)
    num_workers: int | None = param(None, IsNone(), Interval(int, 0))
    decode: str = param(DEFAULT_DECODE, StrOptions(DECODE_PATHS))  # "full" is open_clip's preprocessing exactly
    # where images decode: worker threads or processes (same pixels), JPEGs on the CUDA device or not
    decode_pool: str = param(DEFAULT_DECODE_POOL, StrOptions(DECODE_POOLS))
    gpu_decode: str = param(DEFAULT_GPU_DECODE, StrOptions(GPU_DECODE))
    precision: str = param(DEFAULT_PRECISION, StrOptions(PRECISIONS))  # bf16/int8: opt-in, checked against fp32
    progress: bool = param(True, Boolean())
    report: bool = param(True, Boolean())
    quiet: bool = param(False, Boolean())  # only the summary on the terminal
    # the report's feature projection (None: pca for the demo set, else umap)
    projection: str | None = param(None, IsNone(), StrOptions(PROJECTIONS))
    # "all": every layer of the image tower too (encoding/layers.py), layer-wise scenarios
    layers: str = param("final", StrOptions(LAYERS_CHOICES))
    # each layer as its pooled token, or "srp": the whole map by sparse random projection
    layer_mode: str = param("token", StrOptions(LAYER_MODES))
    # the layer probe's controls (scenarios.LAYER_CONTROLS), each a scenario
    controls: list[str] | None = param(None, IsNone(), ListOf((StrOptions(LAYER_CONTROLS),), unique=True,
                                                               container=list))

    def __post_init__(self):
        check_fields(self)

    def resolved_model(self) -> tuple[str, str]:
        if self.demo:
            return self.model or TINY_MODEL, self.pretrained or "random"
        return self.model or DEFAULT_MODEL, self.pretrained or DEFAULT_PRETRAINED


def demo_dir(seed: int) -> Path:
    return cache_home() / "demo" / f"seed-{seed}"


def load_stimuli(cfg: RunConfig, reporter: Reporter | None = None) -> StimulusSet:
    """The run's stimulus set; a rated set's files read from outside its folder are announced as
    stage lines (``reporter``, by default the run's own)."""
    if cfg.data is not None:
        if is_rated_set(cfg.data):  # any rated image set: a ratings CSV + a dirti-bench.json sidecar
            reporter = reporter or Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
            return load_rated_set(cfg.data, note=lambda line: reporter.stage(f"note: {line}"),
                                  progress=reporter.shows_progress)
        return load_dirti(cfg.data)
    if cfg.demo:
        root = ensure_demo(demo_dir(cfg.seed), seed=cfg.seed)
        return load_dirti(root, name=f"dirti-demo-seed{cfg.seed}")
    try:
        root = ensure_dirti()
    except UserError as exc:  # the default path: say every way out, the offline demo included
        earlier = exc.option if isinstance(exc.option, tuple) else ((exc.option,) if exc.option else ())
        raise UserError(f"{exc}; or try the demo set for an offline smoke run",
                        (*earlier, "demo")) from None
    return load_dirti(root)


def build_encoder(cfg: RunConfig, reporter: Reporter | None = None,
                  decoded: DecodedImages | None = None, weights_sha256: str | None = None,
                  cache: bool = True) -> CachedEncoder | ClipEncoder:
    """``decoded``: crops shared by the models of a sweep (each image decoded once per preprocessing);
    ``weights_sha256``: the checkpoint file's hash, when a sweep has computed it already; ``cache``:
    False encodes every image again and writes no embedding."""
    model, pretrained = cfg.resolved_model()
    progress = reporter.shows_progress if reporter is not None else cfg.progress
    clip = ClipEncoder(model, pretrained, device=cfg.device, seed=cfg.seed, batch_size=cfg.batch_size,
                       num_workers=cfg.num_workers, progress=progress, decode=cfg.decode,
                       precision=cfg.precision, decoded=decoded, weights_sha256=weights_sha256,
                       decode_pool=cfg.decode_pool, gpu_decode=cfg.gpu_decode)
    return CachedEncoder(clip, embedding_cache_dir()) if cache else clip


def config_sha256(scenarios: Iterable[Scenario], cfg: RunConfig) -> str:
    """What a run's numbers depend on besides model and data: scenarios with their options, seed,
    decode path and precision (how ``--skip-existing`` knows a results directory is current)."""
    doc = {"scenarios": [[s.id, s.task, s.evaluator, s.options.to_dict()] for s in scenarios],
           "seed": cfg.seed, "decode": cfg.decode, "precision": cfg.precision,
           **({"gpu_decode": cfg.gpu_decode} if cfg.gpu_decode != DEFAULT_GPU_DECODE else {})}  # it moves pixels
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def is_results_dir(path: Path) -> bool:
    """A folder some run wrote (results.json at its top), e.g. pytest's results/benchmarks in results/."""
    return path.is_dir() and (path / RESULTS_FILE).is_file()


def check_out(out: Path, option: str = "out") -> Path:
    """``out`` can be created and written, and so can its parent, where the new results folder is
    staged before it replaces ``out`` (checked before the model loads). ``option``: the setting
    that names ``out`` (the CLI shows its flag)."""
    fix = "pass a writable folder"
    check_writable_dir(out, "results folder", fix, option)
    if Path(out).expanduser().is_dir():
        check_writable_dir(Path(out).expanduser().resolve().parent, "the folder of the results folder", fix, option)
    return Path(out)


def check_out_dir(out: Path, option: str = "out") -> None:
    """A run replaces ``out`` whole, so it must be new, empty, or an earlier run's folder (other
    runs' results folders nested in it are kept)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"results folder {out} is a file; pass a directory (new, empty, or an earlier results "
                        "folder)", option)
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        read_results(out)
    except UserError:
        others = sorted(p.name for p in out.iterdir())
        raise UserError(f"results folder {out} holds files that are not dirti-bench results ({', '.join(others[:5])}"
                        f"{', ...' if len(others) > 5 else ''}); a run replaces its output folder whole, so pass "
                        "a new or empty directory, or one an earlier run wrote", option) from None


def describe_stimuli(stimuli: StimulusSet) -> str:
    columns = stimuli.rating_columns
    disgust = f" (disgust: {stimuli.disgust_column})" if stimuli.disgust_column in columns else " (no disgust rating)"
    return (f"stimuli: {len(stimuli)} images, {len(stimuli.categories)} categories, {len(columns)} rating "
            f"column{'s' if len(columns) != 1 else ''}{disgust} from {stimuli.name} ({stimuli.root})")


def describe_model(encoder) -> list[str]:
    info = encoder.run_info()
    lines = [f"model: {info.get('model')} · weights {info.get('pretrained')} · device {info.get('device')}"
             + (f" · {info.get('precision')}" if info.get("precision") not in (None, DEFAULT_PRECISION) else "")]
    if info.get("smoke_run"):
        lines.append(f"random weights (seed {info.get('seed')}): a smoke run that shows the pipeline works; "
                     "its numbers mean nothing (pass --pretrained for real weights)")
    return lines


def encode(cfg: RunConfig, ctx: EvalContext, reporter: Reporter) -> EvalContext:
    """Every image once, through the embedding cache; fills ``ctx.image_features``."""
    encoder, stimuli = ctx.encoder, ctx.stimuli
    paths = [s.path for s in stimuli.stimuli]
    shas = [s.sha256 for s in stimuli.stimuli]
    if cfg.layers == "all" or "random-init" in (cfg.controls or ()):
        # every layer first: the same forward stores the embeddings read below (one forward per image)
        from .evaluators.layer_eval import layers_for

        layers_for(ctx, cfg.layer_mode, reporter=reporter)
    cache = getattr(encoder, "cache", None)
    if cache is not None and all(shas):
        cached = sum(cache.has("image", key) for key in shas)
        reporter.stage(f"images: {cached} of {len(paths)} embeddings cached"
                       + (f", encoding {len(paths) - cached}" if cached < len(paths) else ""))
    if isinstance(encoder, CachedEncoder) and all(shas):  # the loader already hashed every image
        ctx.image_features = encoder.encode_images(paths, keys=shas)
    else:
        ctx.image_features = encoder.encode_images(paths)
    clip = getattr(encoder, "encoder", encoder)
    if getattr(clip, "precision", DEFAULT_PRECISION) != DEFAULT_PRECISION:
        reporter.stage(check_precision_agreement(clip, stimuli))
    return ctx


def prepare(cfg: RunConfig, encoder=None, rating_columns=(), reporter: Reporter | None = None,
            stimuli: StimulusSet | None = None) -> EvalContext:
    """Check the options, load the stimuli (unless given), then encode every image once (through the cache)."""
    encoder = encoder or build_encoder(cfg, reporter)  # validates model, weights and device before any data work
    check_cache_home()  # downloads, the demo set and embeddings go there
    stimuli = load_stimuli(cfg, reporter) if stimuli is None else stimuli
    reporter = reporter or Reporter("silent")
    for column in rating_columns:  # before the (possibly long) cold encode
        stimuli.require_rating(column)
    return encode(cfg, EvalContext(stimuli=stimuli, encoder=encoder, image_features=_no_features(stimuli),
                                   seed=cfg.seed), reporter)


def _no_features(stimuli: StimulusSet) -> np.ndarray:
    return np.zeros((len(stimuli), 0), dtype=np.float32)


def check_precision_agreement(clip: ClipEncoder, stimuli: StimulusSet) -> str:
    """bf16/int8 against an fp32 twin on a spread sample of the images, category zero-shot with the
    study's prompts; recorded in run info (``precision_check``) and returned as one line. Runs every
    time, cache or not, so a reduced-precision result never comes without it."""
    clip.precision_check = category_agreement(fp32_twin(clip), clip, stimuli)
    return describe(clip.precision_check)


def run_info(ctx: EvalContext) -> dict:
    info = dict(ctx.encoder.run_info())
    info.update({
        "dataset": ctx.stimuli.name, "dataset_sha256": ctx.stimuli.sha256, "n_stimuli": len(ctx.stimuli),
        "disgust_column": ctx.stimuli.disgust_column,
        "rating_scale": list(ctx.stimuli.rating_scale) if ctx.stimuli.rating_scale else None,
        "seed": ctx.seed, "created": now_iso(), "versions": versions(),
        "forward_calls": ctx.encoder.forward_calls,
    })
    cache = getattr(ctx.encoder, "cache", None)
    if cache is not None:
        info["cache"] = {"dir": str(cache.dir), "hits": cache.hits, "misses": cache.misses,
                         "corrupt": cache.corrupt}
    return info


def feature_files(ctx: EvalContext) -> dict[str, bytes]:
    """features.npz (stimulus ids typed as in the CSVs) and stimuli.csv."""
    ids = [s.id for s in ctx.stimuli.stimuli]
    integers = ids_are_integers(ids)
    buf = io.BytesIO()
    np.savez_compressed(buf, features=ctx.image_features, stimulus=typed_ids(ids, integers))
    table = ctx.stimuli.to_frame().assign(stimulus=typed_ids(ids, integers))
    return {FEATURES_FILE: buf.getvalue(), STIMULI_FILE: table.to_csv(index=False).encode()}


def layer_files(results: list[ScenarioResult], figures_dir: Path | None = None, run: dict | None = None,
                integer_ids: bool = False) -> dict[str, bytes]:
    """The layer files of the layer-wise scenarios (none without them), and with ``figures_dir`` one
    layer-profile figure per rating and one per classification task there."""
    frames = layer_frames(results, integer_ids)
    if not frames:
        return {}
    from .reporting.layer_figures import write_class_layer_profiles, write_layer_profiles

    if figures_dir is not None:
        write_layer_profiles([r for r in results if r.layer_scores is not None], figures_dir, run or {})
        write_class_layer_profiles([r for r in results if r.layer_class_scores is not None], figures_dir, run or {})
    return {name: frame.to_csv(index=False).encode() for name, frame in frames.items()}


def layer_rsa_files(ctx: EvalContext) -> tuple[dict[str, bytes], dict | None]:
    """layer_rsa.csv and layer_rdms.npz for every layer set the run read (evaluators/rsa.py)."""
    from .evaluators.rsa import layer_rsa

    done = layer_rsa(ctx.stimuli, list(ctx.layers.values()), seed=ctx.seed)
    if done is None:
        return {}, None
    table, rdms, summary = done
    return {"layer_rsa.csv": table.to_csv(index=False).encode(), "layer_rdms.npz": rdms}, summary


def plan_scenarios(cfg: RunConfig, stimuli: StimulusSet | None = None) -> tuple[list[Scenario], list[PromptFilePlan]]:
    """The scenarios a run asked for, with the options its flags set, and what each prompt file made.

    Without ``stimuli`` only what needs no data is checked (ids, options, prompt files and the
    ids a template list makes); with them, per-class and pair files are matched to this set's
    label spaces and ratings too, and their ids checked, all before any image is encoded.
    """
    threshold = cfg.threshold  # checked when the config was made (None: each scenario's own)
    files = list(dict.fromkeys(Path(p).resolve() for p in cfg.templates or []))  # one file named twice runs once
    plans = [prompt_file_plan(path, stimuli, DEFAULT_THRESHOLD if threshold is None else threshold)
             for path in files]
    check_prompt_file_ids(plans)  # per-class and pair files join once the stimuli are known
    extra = [s for plan in plans for s in plan.scenarios]
    extra += [s for column in (cfg.ratings or []) for s in alignment_scenarios(column)]
    if cfg.layers == "all" or cfg.controls:
        columns = [DISGUST_RATING, *(cfg.ratings or []),
                   *(stimuli.aligned_ratings if stimuli is not None else ())]
        extra += [s for column in dict.fromkeys(columns)
                  for s in layer_scenarios(column, cfg.layer_mode, cfg.layers == "all", cfg.controls or ())]
        if cfg.layers == "all":
            extra += probe_layer_scenarios(cfg.layer_mode) + knn_layer_scenarios(cfg.layer_mode)
        extra += classifier_control_scenarios(cfg.controls or (), cfg.layer_mode)
    patterns = cfg.scenarios
    if patterns and any(not plan.resolved for plan in plans):
        return [], plans  # a pattern may name a scenario of a file that is matched once the data is loaded
    if patterns and extra:  # scenarios the user asked for by option are always run
        patterns = [*patterns, *(s.id for s in extra)]
    if stimuli is not None:
        taken = {e.id for e in extra}
        extra += [s for s in data_scenarios(stimuli, matches_any(patterns)) if s.id not in taken]
    chosen = select(patterns, extra)
    if threshold is not None:
        chosen = [s.with_options(threshold=threshold) if s.task in DISGUST_TASKS else s for s in chosen]
    if cfg.n_raters is not None:
        chosen = [s.with_options(n_raters=cfg.n_raters, n_raters_source="--n-raters") if not s.is_classification
                  else s for s in chosen]
    return chosen, plans


def split_runnable(scenarios: Iterable[Scenario], ctx: EvalContext) -> tuple[list[Scenario], dict[str, str]]:
    """Split ``scenarios`` into those the stimuli support and those skipped (id -> reason); reads
    the stimuli only, so it runs before any image is encoded."""
    runnable, skipped = [], {}
    for scenario in scenarios:
        try:
            check_runnable(scenario, ctx)
        except ScenarioNotRunnable as exc:
            skipped[scenario.id] = str(exc)
        else:
            runnable.append(scenario)
    if not runnable:
        reasons = "; ".join(skipped_lines(skipped))
        raise UserError(f"none of the chosen scenarios can run on {ctx.stimuli.name}: {reasons}")
    return runnable, skipped


def unused_rating_skips(stimuli: StimulusSet, patterns=None) -> dict[str, str]:
    """The alignment scenarios (those ``patterns`` select) of the columns a rated set left out although
    they hold numbers, each with why: recorded as skipped, so no analysis disappears without a word."""
    wanted, out = matches_any(patterns), {}
    for column, why in stimuli.unused_ratings:
        try:
            ids = alignment_ids(column)
        except UserError:  # a name without letters or digits makes no id: keep it as written
            ids = (f"align-{column}",)
        out.update({sid: why for sid in ids if wanted(sid)})
    return out


def evaluate_scenario(scenario: Scenario, ctx: EvalContext) -> ScenarioResult:
    """Run one scenario and check its result; an inconsistent result never reaches a file."""
    result = run_evaluator(scenario, ctx)
    check_scenario_result(result, scenario, ctx)
    return result


def evaluate(scenarios: Iterable[Scenario], ctx: EvalContext, reporter: Reporter | None = None,
             skipped: dict[str, str] | None = None) -> list[ScenarioResult]:
    """Every scenario (progress bar in ``reporter``), results in the scenarios' order; one the data turns
    out not to support after all is added to ``skipped`` instead of stopping the run. On a large set the
    features-only scenarios run in worker processes beside this one (``evaluation_workers``), with the
    same results."""
    reporter = reporter or Reporter("silent")
    scenarios = list(scenarios)
    workers = evaluation_workers(scenarios, len(ctx.stimuli))
    if workers:
        return _evaluate_beside_workers(scenarios, ctx, reporter, skipped, workers)
    results = []
    for scenario in reporter.bar(scenarios, total=len(scenarios), desc="scenarios"):
        try:
            results.append(evaluate_scenario(scenario, ctx))
        except ScenarioNotRunnable as exc:
            if skipped is None:
                raise
            skipped[scenario.id] = str(exc)
            reporter.skipped({scenario.id: str(exc)})
    return results


def _evaluate_beside_workers(scenarios: list[Scenario], ctx: EvalContext, reporter: Reporter,
                             skipped: dict[str, str] | None, workers: int) -> list[ScenarioResult]:
    """``evaluate`` with the features-only scenarios in ``workers`` processes (longest first) while this
    process runs the others in order. A worker's error other than ScenarioNotRunnable is raised here
    as soon as it is seen; the skipped are recorded in the scenarios' order once all are done."""
    outcomes: dict[int, ScenarioResult | ScenarioNotRunnable] = {}

    def settled(future, position: int) -> None:
        error = future.exception()
        if error is None:
            outcomes[position] = future.result()
        elif isinstance(error, ScenarioNotRunnable) and skipped is not None:
            outcomes[position] = error
        else:
            raise error

    def finished():  # one item per scenario done, for the progress bar
        outsourced = longest_first(scenarios)
        with FeatureWorkers(ctx, workers) as pool:
            pending = {pool.submit(scenarios[i]): i for i in outsourced}
            for position in sorted(set(range(len(scenarios))) - set(outsourced)):
                for future in [f for f in pending if f.done()]:  # a worker's error stops the run now
                    settled(future, pending.pop(future))
                    yield
                try:
                    outcomes[position] = evaluate_scenario(scenarios[position], ctx)
                except ScenarioNotRunnable as exc:
                    if skipped is None:
                        raise
                    outcomes[position] = exc
                yield
            for future in as_completed(list(pending)):
                settled(future, pending.pop(future))
                yield

    for _ in reporter.bar(finished(), total=len(scenarios), desc="scenarios"):
        pass
    results = []
    for position, scenario in enumerate(scenarios):
        outcome = outcomes[position]
        if isinstance(outcome, ScenarioNotRunnable):
            skipped[scenario.id] = str(outcome)
            reporter.skipped({scenario.id: str(outcome)})
        else:
            results.append(outcome)
    return results


def projection_for(cfg: RunConfig) -> str:
    return cfg.projection or ("pca" if cfg.demo else "umap")


def write_run(out: Path, ctx: EvalContext, results: list[ScenarioResult], extra_info: dict | None = None,
              report: bool = True, reporter: Reporter | None = None, skipped: dict[str, str] | None = None,
              projection: str = "umap", comparisons: list[dict] | None = None) -> Path:
    """results.json, the CSVs, features, comparisons (computed here unless given) and (optionally) the report, written into a
    folder beside ``out`` and swapped in whole: no file of an earlier run survives, and a failure or
    Ctrl-C before the swap leaves ``out`` as it was."""
    reporter = reporter or Reporter("silent")
    check_out_dir(out)
    info = {**run_info(ctx), "projection": projection, **(extra_info or {})}
    rsa_files = {}
    if ctx.layers:  # layer features were read: their representational similarity with the ratings
        reporter.stage("layers: representational similarity with the rating profiles (RDMs, permutation test)")
        rsa_files, info["layer_rsa"] = layer_rsa_files(ctx)
    stimuli = ctx.stimuli.stimuli
    try:
        with StagedDir(out) as staged:
            files = {**feature_files(ctx), **layer_files(results, staged.path if report else None, info,
                                                            ids_are_integers(s.id for s in stimuli)), **rsa_files}
            write_results(staged.path, info, results, files,
                          comparisons=comparisons_for(results, seed=ctx.seed) if comparisons is None else comparisons,
                          skipped=skipped,
                          file_names={s.id: s.file_name for s in stimuli},
                          integer_ids=ids_are_integers(s.id for s in stimuli))
            if report:
                reporter.stage(f"writing the report ({projection.upper()} projection of the image features)")
                try:
                    write_report([staged.path], staged.path, shown_as=[Path(out)], projection=projection,
                                 reporter=reporter)
                except UserError as exc:  # name the folder the user chose, not the staging one (removed on exit)
                    raise UserError(str(exc).replace(str(staged.path), str(out)), getattr(exc, "option", None)) from None
            replaced = staged.commit(keep=is_results_dir)
    except OSError as exc:  # checked writable at the start; a full disk can still stop it here
        raise UserError(f"cannot write the results into {out} ({exc.strerror or exc}); free some space or "
                        "pass another results folder", "out") from None
    reporter.outputs(out, report, replaced)
    return Path(out)


def check_before_loading(cfg: RunConfig) -> None:
    """Ids, options and prompt files that need no data, and a writable --out: they fail before any model
    loads. A rated set adds scenarios for its own rating columns, so --scenarios patterns are checked
    once it is loaded."""
    plan_scenarios(cfg if cfg.data is None or not is_rated_set(cfg.data) else replace(cfg, scenarios=None))
    check_out(cfg.out)


@dataclass
class Planned:
    """What a run (or each model of a sweep) evaluates: the stimuli, the scenarios they support and
    those they do not (with the reason), and what results.json records of the plan."""

    stimuli: StimulusSet
    chosen: list[Scenario]
    skipped: dict[str, str]
    info: dict  # config_sha256, and the prompt files matched to the set


def load_and_plan(cfg: RunConfig, reporter: Reporter, encoder=None) -> Planned:
    """Load the stimuli into a checked cache home and plan the scenarios they support, each step said
    in a line, all before any image is encoded."""
    check_cache_home()  # the demo set, downloads and embeddings go there
    stimuli = load_stimuli(cfg, reporter)
    for column in cfg.ratings or ():  # asked for by name: a missing column is the user's to fix
        stimuli.require_rating(column)
    scenarios, plans = plan_scenarios(cfg, stimuli)  # prompt files matched to this set, still before encoding
    reporter.stage(describe_stimuli(stimuli))  # once the set passed every check that needs no image
    for prompt_plan in plans:
        reporter.stage(prompt_plan.line())
    chosen, skipped = split_runnable(scenarios, EvalContext(stimuli, encoder, _no_features(stimuli), cfg.seed))
    skipped = {**unused_rating_skips(stimuli, cfg.scenarios), **skipped}
    reporter.skipped(skipped)
    # how ``evaluate`` will run them: worker processes beside the main one (0: all in the main process)
    info = {"config_sha256": config_sha256(chosen, cfg), "evaluation_workers": evaluation_workers(chosen, len(stimuli))}
    if plans:
        info["prompt_files"] = [prompt_plan.to_json() for prompt_plan in plans]
    return Planned(stimuli, chosen, skipped, info)


@dataclass
class Evaluated:
    """A run's outcome in memory: the context (stimuli, encoder, features), each scenario's result,
    those skipped (id -> why), what results.json records of the plan, and the paired comparisons."""

    ctx: EvalContext
    results: list[ScenarioResult]
    skipped: dict[str, str]
    info: dict
    comparisons: list[dict]

    def document(self, projection: str | None = None) -> dict:
        """results.json's document (what the terminal summary and the Python API read)."""
        run = {**run_info(self.ctx), **({"projection": projection} if projection else {}), **self.info}
        return results_document(run, self.results, self.comparisons, skipped=self.skipped)


def compute(cfg: RunConfig, encoder=None, reporter: Reporter | None = None) -> Evaluated:
    """Load the stimuli, plan the scenarios they support, encode once and evaluate; writes nothing
    but the cache home's entries (the demo set, embeddings unless the encoder has no cache)."""
    reporter = reporter or Reporter("silent")
    encoder = encoder or build_encoder(cfg, reporter)  # model, weights and device, before any data work
    planned = load_and_plan(cfg, reporter, encoder)
    stimuli, chosen, skipped, info = planned.stimuli, planned.chosen, planned.skipped, planned.info
    ctx = EvalContext(stimuli=stimuli, encoder=encoder, image_features=_no_features(stimuli), seed=cfg.seed)
    for line in describe_model(encoder):
        reporter.stage(line)
    encode(cfg, ctx, reporter)
    results = evaluate(chosen, ctx, reporter, skipped)
    return Evaluated(ctx, results, skipped, info, comparisons_for(results, seed=ctx.seed))


def run(cfg: RunConfig, encoder=None, reporter: Reporter | None = None) -> Path:
    """``dirti-bench run``: check everything checkable before the model loads, load the stimuli, plan
    the scenarios they support, encode once, evaluate, print the summary, then write results and
    report together."""
    reporter = reporter or Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
    check_before_loading(cfg)
    check_out_dir(cfg.out)  # replaced whole at the end: an earlier run's folder, or new, or empty
    done = compute(cfg, encoder, reporter)
    # The summary comes first: on a first run the report (figures, projection) takes longer. Its Δ to
    # the study wording and its Findings need the comparisons, so they are computed once for both.
    reporter.summary(done.document(projection_for(cfg)))
    return write_run(cfg.out, done.ctx, done.results, extra_info=done.info, report=cfg.report, reporter=reporter,
                     skipped=done.skipped, projection=projection_for(cfg), comparisons=done.comparisons)


def image_shard(n: int, shard: tuple[int, int]) -> range:
    """The I-th of N contiguous image ranges (1-based I; sizes differ by at most one), so each shard
    reads one stretch of the set."""
    index, count = shard
    return range((index - 1) * n // count, index * n // count)


@dataclass
class ShardOutcome:
    shard: tuple[int, int]
    images: range  # positions in the set, 0-based
    n_stimuli: int
    encoded: int  # images this shard sent through the model (the rest were cached already)
    cache_dir: Path
    texts: int = 0  # the prompt texts the chosen scenarios encode
    texts_encoded: int = 0  # of those, sent through the model by this shard
    # what still builds the model in the evaluation run (texts not known ahead, a precision check)
    model_still_needed: tuple[str, ...] = ()

    def summary(self) -> str:
        index, count = self.shard
        first, last = self.images.start + 1, self.images.stop
        after = ("no model forward: every image and prompt embedding is cached" if not self.model_still_needed
                 else f"no image forward; the model is still built for {' and '.join(self.model_still_needed)}")
        return (f"shard {index}/{count}: images {first}-{last} of {self.n_stimuli} in the embedding cache "
                f"({self.encoded} encoded now, {len(self.images) - self.encoded} found cached) and the "
                f"{self.texts} prompt texts of the chosen scenarios ({self.texts_encoded} encoded now) at "
                f"{self.cache_dir}; once every shard has finished, the same command without --shard evaluates "
                f"the whole set ({after})")


def scenario_text_calls(scenarios: Iterable[Scenario], ctx: EvalContext) -> tuple[list[list[str]], list[str]]:
    """The ``encode_texts`` calls ``scenarios`` make when evaluated in this order (``scenario_texts``),
    and the ids of those whose texts are not known ahead (their evaluator does not say)."""
    calls, unknown = [], []
    for scenario in scenarios:
        try:
            texts = scenario_texts(scenario, ctx)
        except ScenarioNotRunnable:  # the evaluation skips it too: it encodes nothing
            continue
        if texts is None:
            unknown.append(scenario.id)
        else:
            calls += texts
    return calls, unknown


def encode_shard_texts(planned: Planned, encoder: CachedEncoder, seed: int,
                       reporter: Reporter) -> tuple[int, int, list[str]]:
    """Every prompt text the planned scenarios will encode, into the embedding cache, in the calls
    the evaluators make (so the same embeddings as an unsharded run's): the number of texts, how
    many were encoded now, and the scenarios whose texts are not known ahead."""
    ctx = EvalContext(planned.stimuli, encoder, _no_features(planned.stimuli), seed)
    calls, unknown = scenario_text_calls(planned.chosen, ctx)
    texts = list(dict.fromkeys(text for call in calls for text in call))
    cached = sum(encoder.cache.has("text", text_key(text)) for text in texts)
    reporter.stage(f"texts: {len(texts)} prompts of the chosen scenarios, {cached} cached"
                   + (f", encoding {len(texts) - cached}" if cached < len(texts) else ""))
    misses_before = encoder.cache.misses
    for call in calls:  # repeats are read from the encoder's memory, as in the evaluation
        encoder.encode_texts(call)
    return len(texts), encoder.cache.misses - misses_before, unknown


def encode_shard(cfg: RunConfig, shard: tuple[int, int], reporter: Reporter | None = None,
                 encoder=None) -> ShardOutcome:
    """Encode only the ``shard``'s range of the set's images, and every prompt text of the scenarios
    the run will evaluate, into the shared embedding cache (the cache home; no results folder, no
    evaluation): splitting one large set's encoding over machines. Each shard encodes the texts
    (a few seconds; content-keyed entries written atomically), so whichever shards finish, the
    evaluation after them finds them cached."""
    reporter = reporter or Reporter("silent")
    if cfg.layers != "final" or "random-init" in (cfg.controls or ()):
        raise UserError("image shards fill the final-embedding cache only; run every layer and the "
                        "random-init control without a shard", "shard")
    encoder = encoder or build_encoder(cfg, reporter)
    if not isinstance(encoder, CachedEncoder):
        raise UserError("image shards write to the embedding cache; this encoder has none", "shard")
    planned = load_and_plan(cfg, reporter, encoder)  # the scenarios of the evaluation run: their texts
    stimuli = planned.stimuli
    mine = image_shard(len(stimuli), shard)
    if not len(mine):
        raise UserError(f"shard {shard[0]}/{shard[1]} holds no image of the {len(stimuli)} in {stimuli.name}; "
                        "use fewer shards", "shard")
    picked = [stimuli.stimuli[i] for i in mine]
    for line in describe_model(encoder):
        reporter.stage(line)
    n_texts, texts_encoded, unknown = encode_shard_texts(planned, encoder, cfg.seed, reporter)
    keys = [s.sha256 for s in picked]
    cached = sum(encoder.cache.has("image", key) for key in keys)
    reporter.stage(f"shard {shard[0]}/{shard[1]}: images {mine.start + 1}-{mine.stop} of {len(stimuli)}, "
                   f"{cached} cached, encoding {len(picked) - cached}")
    misses_before = encoder.cache.misses
    encoder.encode_images([s.path for s in picked], keys=keys)
    still = ([f"the texts of {', '.join(unknown)}"] if unknown else []) + (
        [f"the {cfg.precision} check against fp32"] if cfg.precision != DEFAULT_PRECISION else [])
    return ShardOutcome(shard, mine, len(stimuli), encoder.cache.misses - misses_before, encoder.cache.dir,
                        n_texts, texts_encoded, tuple(still))
