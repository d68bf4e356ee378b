"""Many models, one table: a sweep runs every model of a list over one stimulus set.

Model-independent work is done once per sweep: imports, loading and hashing the stimuli,
checking every line of the list and which scenarios the data supports, and decoding +
resizing each image once per distinct preprocessing (``encoding.imaging.DecodedImages``).
Each model is loaded once, encodes through the embedding cache, writes a complete results
folder ``OUT/runs/<model>__<weights>/`` (swapped in whole, as a single run writes its --out)
and is released before the next, so peak memory is one model's. A model that cannot run is
one ``error:`` line; the others still run. Unsharded, the sweep ends with
``OUT/leaderboard.csv`` and the comparison report; shards leave that to
``dirti-bench report OUT``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tabulate import tabulate

from .contracts import EvalContext
from .data.stimuli import file_sha256
from .encoding.imaging import DecodedImages
from .encoding.model_list import ModelSpec, check_model
from .encoding.models import WeightsSpec
from .errors import UserError
from .pipeline import (
    RunConfig,
    _no_features,
    build_encoder,
    check_before_loading,
    describe_model,
    encode,
    evaluate,
    load_and_plan,
    projection_for,
    write_run,
)
from .reporting.console import Reporter
from .reporting.leaderboard import LEADERBOARD_FILE, leaderboard_text
from .reporting.runs_report import RUNS_DIR, write_comparison
from .results import PREDICTIONS_FILE, RESULTS_FILE, read_results


@dataclass
class SweepOutcome:
    out: Path
    done: list[ModelSpec] = field(default_factory=list)
    skipped: list[ModelSpec] = field(default_factory=list)  # already complete (--skip-existing)
    failed: list[tuple[ModelSpec, str]] = field(default_factory=list)
    report: Path | None = None  # the comparison report, when this process wrote one
    merged: bool = False  # leaderboard.csv written by this process
    board: str = ""  # the closing leaderboard: one row per model, headline measures and flags
    all_specs: list[ModelSpec] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0

    def summary(self, shard: tuple[int, int] | None = None) -> str:
        """The closing table (one row per model) and where everything is."""
        failed = {spec.slug for spec, _ in self.failed}
        rows = [(spec.model, spec.slug.split("__", 1)[-1],
                 "failed" if spec.slug in failed else "skipped (complete)" if spec in self.skipped else "done",
                 "" if spec.slug in failed else str(run_dir(self.out, spec)))
                for spec in self.all_specs]
        lines = [tabulate(rows, headers=["model", "weights", "status", "results"], tablefmt="github")]
        where = f"shard {shard[0]}/{shard[1]}: " if shard else ""
        lines.append(f"{where}{len(self.all_specs)} models: {len(self.done)} run, {len(self.skipped)} skipped, "
                     f"{len(self.failed)} failed")
        if self.board:
            lines += ["", "leaderboard (headline measures; every metric with its flags in leaderboard.csv):",
                      self.board, ""]
        if self.merged:
            lines.append(f"leaderboard: {self.out / LEADERBOARD_FILE}")
        if self.report is not None:
            lines.append(f"comparison report: {self.report.with_name('report.html')}")
        elif self.merged:
            lines.append("no comparison report (--no-report); render it with: dirti-bench report "
                         f"{self.out}")
        if shard is not None:
            lines.append(f"merge the shards with: dirti-bench report {self.out}")
        return "\n".join(lines)


def run_dir(out: Path, spec: ModelSpec) -> Path:
    return Path(out) / RUNS_DIR / spec.slug


def _checkpoint_file(spec: ModelSpec) -> Path | None:
    weights = WeightsSpec.parse(spec.pretrained)
    return Path(weights.value) if weights.kind == "file" else None


class CheckpointHashes:
    """The sha256 of every checkpoint file of the list, hashed on one background thread from the
    start of the sweep (hashlib releases the GIL), so reading hundreds of MB per model overlaps the
    imports, the stimuli and the model builds instead of delaying each model's start."""

    def __init__(self, specs: list[ModelSpec]):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dirti-hash")
        self._hashes: dict[Path, Future] = {}
        for spec in specs:
            path = _checkpoint_file(spec)
            if path is not None and path not in self._hashes:
                self._hashes[path] = self._pool.submit(file_sha256, path)

    def get(self, spec: ModelSpec) -> str | None:
        """The file's hash, or None (not a file, or unreadable: the encoder hashes it itself and
        reports the problem as it always does)."""
        future = self._hashes.get(_checkpoint_file(spec))
        try:
            return future.result() if future is not None else None
        except OSError:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _weights_identity(spec: ModelSpec, hashes: CheckpointHashes | None = None) -> str | None:
    path = _checkpoint_file(spec)
    if path is None:
        return None
    return (hashes.get(spec) if hashes is not None else None) or file_sha256(path)


def is_complete(folder: Path, spec: ModelSpec, dataset_sha256: str, config: str,
                hashes: CheckpointHashes | None = None) -> bool:
    """Whether ``folder`` holds this model's finished run on the same data, scenarios and options."""
    if not (folder / RESULTS_FILE).is_file() or not (folder / PREDICTIONS_FILE).is_file():
        return False
    try:
        run = read_results(folder)["run"]
    except UserError:
        return False  # unreadable: run it again
    same = (run.get("model") == spec.model and run.get("pretrained") == WeightsSpec.parse(spec.pretrained).value
            and run.get("dataset_sha256") == dataset_sha256 and run.get("config_sha256") == config)
    file_sha = _weights_identity(spec, hashes) if same else None
    return same and (file_sha is None or run.get("weights_sha256") == file_sha)


def run_sweep(cfg: RunConfig, specs: list[ModelSpec], skip_existing: bool = False, merge: bool = True,
              reference: str | None = None, reporter: Reporter | None = None) -> SweepOutcome:
    """Run ``specs`` (already sharded) into ``cfg.out``; ``merge`` writes the leaderboard and report."""
    reporter = reporter or Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
    outcome = SweepOutcome(Path(cfg.out), all_specs=list(specs))
    # Options, --out and every line of the list are checked before any model loads or image is encoded.
    check_before_loading(cfg)
    problems = {spec.slug: check_model(spec) for spec in specs}
    for spec in specs:
        if problems[spec.slug]:
            reporter.error(problems[spec.slug])
    hashes = CheckpointHashes([spec for spec in specs if not problems[spec.slug]])
    try:
        planned = load_and_plan(cfg, reporter)  # stimuli loaded and hashed once for every model
        stimuli, chosen, skipped, info = planned.stimuli, planned.chosen, planned.skipped, planned.info
        decoded = DecodedImages()
        for number, spec in enumerate(specs, 1):
            if problems[spec.slug]:
                outcome.failed.append((spec, problems[spec.slug]))
                continue
            folder = run_dir(cfg.out, spec)
            if skip_existing and is_complete(folder, spec, stimuli.sha256, info["config_sha256"], hashes):
                reporter.stage(f"model {number}/{len(specs)}: {spec.label}: complete in {folder}, skipped "
                               "(--skip-existing)")
                outcome.skipped.append(spec)
                continue
            reporter.stage(f"model {number}/{len(specs)}: {spec.label}")
            encoder = None
            try:
                encoder = build_encoder(replace(cfg, model=spec.model, pretrained=spec.pretrained), reporter,
                                        decoded, hashes.get(spec))
                for line in describe_model(encoder):
                    reporter.stage(line)
                ctx = encode(cfg, EvalContext(stimuli, encoder, _no_features(stimuli), cfg.seed), reporter)
                model_skipped = dict(skipped)
                results = evaluate(chosen, ctx, reporter, model_skipped)
                write_run(folder, ctx, results, extra_info={**info, "sweep": {"model_source": spec.source}},
                          report=cfg.report, reporter=reporter, skipped=model_skipped, projection=projection_for(cfg))
                outcome.done.append(spec)
            except UserError as exc:
                message = f"{spec.label} ({spec.source}): {exc}"
                reporter.error(message)
                outcome.failed.append((spec, message))
            finally:
                if encoder is not None:
                    encoder.encoder.release()  # peak memory: one model, not the sum
        finished = [run_dir(cfg.out, s) for s in specs if s in outcome.done or s in outcome.skipped]
        if merge and finished:
            written = write_comparison(finished, cfg.out, reference=reference, report=cfg.report)
            outcome.merged = True
            outcome.report = written if cfg.report else None
            runs = [read_results(folder) for folder in finished]
            outcome.board = leaderboard_text(runs, [f"{d['run'].get('model')} · {Path(str(d['run'].get('pretrained'))).name}"
                                                    for d in runs])
    finally:
        hashes.close()
    return outcome
