"""The Python API: evaluate in memory, run to a results folder, read a results folder back.

    import dirti_bench as db
    r = db.evaluate(data="demo", model="dirti-tiny", pretrained="random", scenarios=["zeroshot-*"])
    r.metrics_frame()          # one tidy row per scenario and metric, as leaderboard.csv
    r["zeroshot-baseline"].metrics, r.predictions_frame()

``data``: ``"demo"`` (the generated demo set, ``demo_path()``), ``"dirti"`` (the cached DIRTI
copy, downloaded on first use), a DIRTI folder, or a rated set (a folder with a dirti-bench.json
sidecar). ``model``: an open_clip model name, or a model object (the encoder seam:
``ModelObjectEncoder``). Every other keyword is a ``RunConfig`` setting (``threshold``,
``n_raters``, ``templates``, ``ratings``, ``batch_size``, ``device``, ``seed``, ...), checked by
the same constraints as the command line's flags.

``evaluate`` writes no results folder, report or file outside the cache home; the cache home
(``$DIRTI_BENCH_HOME``) is where the demo set is generated and image/text embeddings are cached
(``cache=False`` reads and writes no embedding). ``run`` writes the output contract, as
``dirti-bench run`` does, and returns it read back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from .contracts import Scenario
from .data.ratedset import is_rated_set
from .encoding.models import ModelObjectEncoder
from .errors import UserError
from .pipeline import RunConfig, build_encoder, compute, demo_dir, plan_scenarios
from .pipeline import run as run_pipeline
from .reporting.console import Reporter
from .reporting.leaderboard import leaderboard_frame
from .results import (
    ALIGNMENT_PREDICTIONS_FILE,
    LAYER_PREDICTIONS_FILE,
    LAYER_RSA_FILE,
    LAYER_SCORES_FILE,
    PREDICTIONS_FILE,
    PROBABILITIES_FILE,
    PROMPTS_FILE,
    SWEEP_PREDICTIONS_FILE,
    SWEEPS_FILE,
    contract_frames,
    ids_are_integers,
    layer_frames,
    read_contract_frames,
    read_results,
)
from .scenarios import REGISTRY

DEMO = "demo"
DIRTI = "dirti"
# What evaluate()/run() set themselves; every other RunConfig field is a keyword option.
_SET_HERE = {"data", "demo", "model", "pretrained", "scenarios", "out", "progress", "report", "quiet"}
RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _SET_HERE)


# ---------------------------------------------------------------- typed results

@dataclass(frozen=True)
class RunInfo:
    """results.json's run block: what the numbers came from (``details`` holds every key)."""

    model: str | None
    pretrained: str | None
    weights_sha256: str | None
    device: str | None
    dataset: str | None
    dataset_sha256: str | None
    seed: int | None
    smoke_run: bool
    created: str | None
    versions: dict
    details: dict = field(repr=False)

    @classmethod
    def from_json(cls, run: Mapping) -> RunInfo:
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ("details", "smoke_run", "versions")]
        return cls(**{n: run.get(n) for n in names}, smoke_run=bool(run.get("smoke_run")),
                   versions=dict(run.get("versions") or {}), details=dict(run))


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario's result: its numbers, their 95% intervals, its validity flags ({flag, reason};
    empty when none applies) and its predictions (its rows of predictions.csv, or of
    alignment_predictions.csv for an alignment scenario)."""

    id: str
    task: str
    labels: tuple[str, ...]
    n: int
    metrics: dict[str, float | None]
    ci: dict[str, tuple[float | None, float | None] | None]
    flags: tuple[dict, ...]
    options: dict
    per_class: dict = field(repr=False)
    confusion: list = field(repr=False)
    dropped_classes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, repr=False)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def is_classification(self) -> bool:
        return self.task != "alignment"

    @classmethod
    def from_json(cls, sid: str, entry: Mapping, predictions: pd.DataFrame) -> ScenarioOutcome:
        return cls(id=sid, task=entry.get("task", ""), labels=tuple(entry.get("labels") or ()),
                   n=int(entry.get("n") or 0), metrics=dict(entry["metrics"]),
                   ci={m: None if v is None else tuple(v) for m, v in (entry.get("ci") or {}).items()},
                   flags=tuple(entry.get("flags") or ()), options=dict(entry.get("options") or {}),
                   per_class=dict(entry.get("per_class") or {}), confusion=list(entry.get("confusion") or []),
                   dropped_classes=tuple(entry.get("dropped_classes") or ()), extra=dict(entry.get("extra") or {}),
                   predictions=predictions)


@dataclass(frozen=True)
class Results:
    """A run's results, typed: ``run`` (RunInfo), ``scenarios`` (id -> ScenarioOutcome), ``skipped``
    (id -> why the data could not support it) and ``comparisons``. The ``*_frame()`` methods return
    the tidy frames of the output contract's CSV files (the same builders write them); ``document``
    is the results.json document."""

    run: RunInfo
    scenarios: dict[str, ScenarioOutcome]
    skipped: dict[str, str]
    comparisons: list[dict]
    document: dict = field(repr=False)
    frames: dict[str, pd.DataFrame] = field(repr=False)

    @classmethod
    def from_document(cls, doc: Mapping, frames: Mapping[str, pd.DataFrame]) -> Results:
        by_file = {sid: PREDICTIONS_FILE if entry.get("task") != "alignment" else ALIGNMENT_PREDICTIONS_FILE
                   for sid, entry in doc["scenarios"].items()}
        scenarios = {}
        for sid, entry in doc["scenarios"].items():
            table = frames.get(by_file[sid], pd.DataFrame())
            rows = table[table["scenario"] == sid].reset_index(drop=True) if "scenario" in table else table
            scenarios[sid] = ScenarioOutcome.from_json(sid, entry, rows)
        return cls(run=RunInfo.from_json(doc.get("run", {})), scenarios=scenarios,
                   skipped=dict(doc.get("skipped") or {}), comparisons=list(doc.get("comparisons") or []),
                   document=dict(doc), frames=dict(frames))

    def __getitem__(self, scenario_id: str) -> ScenarioOutcome:
        if scenario_id not in self.scenarios:
            raise KeyError(f"no scenario {scenario_id!r} in these results; they hold {', '.join(self.scenarios)}")
        return self.scenarios[scenario_id]

    def __iter__(self) -> Iterator[ScenarioOutcome]:
        return iter(self.scenarios.values())

    def __len__(self) -> int:
        return len(self.scenarios)

    def metrics_frame(self) -> pd.DataFrame:
        """One row per scenario and metric, with its CI and flag: leaderboard.csv's shape."""
        return leaderboard_frame([self.document])

    def _frame(self, name: str) -> pd.DataFrame:
        return self.frames.get(name, pd.DataFrame()).copy()

    def predictions_frame(self) -> pd.DataFrame:
        """predictions.csv: scenario, stimulus, file_name, y_true, y_pred, confidence, fold."""
        return self._frame(PREDICTIONS_FILE)

    def alignment_frame(self) -> pd.DataFrame:
        """alignment_predictions.csv: scenario, stimulus, category, rating, score, repeat, fold."""
        return self._frame(ALIGNMENT_PREDICTIONS_FILE)

    def prompts_frame(self) -> pd.DataFrame:
        """prompts.csv: scenario, class, prompt (every prompt a scenario encoded)."""
        return self._frame(PROMPTS_FILE)

    def sweeps_frame(self) -> pd.DataFrame:
        """sweeps.csv: scenario, point, metric, value, ci_low, ci_high."""
        return self._frame(SWEEPS_FILE)

    def sweep_predictions_frame(self) -> pd.DataFrame:
        """sweep_predictions.csv: scenario, point, stimulus, y_true, y_pred, fold."""
        return self._frame(SWEEP_PREDICTIONS_FILE)

    def probabilities_frame(self) -> pd.DataFrame:
        """probabilities.csv.gz: each zero-shot class's logit and probability per stimulus."""
        return self._frame(PROBABILITIES_FILE)

    def layer_scores_frame(self) -> pd.DataFrame:
        """layer_scores.csv (a run with ``layers="all"`` or ``controls``): one row per layer-wise
        scenario, weights and layer: depth, out-of-fold Pearson r with its bootstrap CI, the published
        all-data leave-one-out r; empty without layer-wise scenarios."""
        return self._frame(LAYER_SCORES_FILE)

    def layer_predictions_frame(self) -> pd.DataFrame:
        """layer_predictions.csv: scenario, weights, layer, depth, kind (cv / loo-all-data), stimulus,
        fold, rating, prediction; every layer score recomputes from it."""
        return self._frame(LAYER_PREDICTIONS_FILE)

    def layer_rsa_frame(self) -> pd.DataFrame:
        """layer_rsa.csv: each layer's RDM vs the human rating-profile RDM (Spearman, permutation p,
        bootstrap CI); empty when no layer features were read."""
        return self._frame(LAYER_RSA_FILE)


# ---------------------------------------------------------------- entry points

def demo_path(seed: int = 0) -> Path:
    """The generated demo set's folder in the cache home (made on first use); ``data="demo"`` is it."""
    from .data.demo import ensure_demo
    from .paths import check_cache_home

    check_cache_home()
    return ensure_demo(demo_dir(seed), seed=seed)


def list_scenarios() -> list[Scenario]:
    """The registry's scenarios (what a run on DIRTI evaluates by default), in order."""
    return list(REGISTRY.values())


def _config(data, model, pretrained, scenarios, options: Mapping, **fixed) -> RunConfig:
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise UserError(f"unknown option {unknown[0]!r}; the options are {', '.join(RUN_OPTIONS)}", unknown[0])
    if isinstance(data, str) and data in (DEMO, DIRTI):
        where = {"demo": data == DEMO}
    elif isinstance(data, str | Path):
        where = {"data": Path(data)}
    else:
        raise UserError(f"data {data!r} is not a path; pass 'demo', 'dirti' or the path to a DIRTI folder or "
                        "a rated set", "data")
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    return RunConfig(**where, model=model, pretrained=pretrained,
                     scenarios=list(scenarios) if scenarios is not None else None, **fixed, **options)


def _encoder(model, preprocess, tokenizer, name):
    """A model object (not a name) becomes the encoder itself; None otherwise (the run builds one)."""
    if model is None or isinstance(model, str):
        if preprocess is not None or tokenizer is not None:
            raise UserError("preprocess and tokenizer go with a model object; with a model name open_clip "
                            "provides them", "preprocess")
        return None
    return ModelObjectEncoder(model, preprocess, tokenizer, name=name)


def _check_before_loading(cfg: RunConfig) -> None:
    """Ids, options and prompt files that need no data (a rated set's own scenarios join once it is loaded)."""
    plan_scenarios(cfg if cfg.data is None or not is_rated_set(cfg.data) else replace(cfg, scenarios=None))


def evaluate(data: str | Path = DEMO, model=None, pretrained: str | None = None,
             scenarios: str | Sequence[str] | None = None, *, preprocess=None, tokenizer=None,
             name: str | None = None, cache: bool = True, progress: bool = False, **options) -> Results:
    """Evaluate ``model`` on ``data`` in memory and return the typed Results; no results folder,
    report or other file is written (the cache home aside: the demo set and, with ``cache``, the
    embeddings).

    ``model``: an open_clip model name (default: ViT-B-32 with openai weights, or dirti-tiny with
    random weights on the demo set) or a model object with open_clip's ``encode_image`` and
    ``encode_text``; a model object needs its ``preprocess`` (PIL image -> tensor) and
    ``tokenizer`` (list of strings -> tokens), and ``name`` names it in the results.
    ``scenarios``: ids or glob patterns (``"zeroshot-*"``); None: all. ``progress``: progress bars
    and stage lines on stderr. ``options``: RunConfig settings (``RUN_OPTIONS``).
    """
    encoder = _encoder(model, preprocess, tokenizer, name)
    cfg = _config(data, None if encoder is not None else model, pretrained, scenarios, options,
                  progress=progress, report=False, quiet=not progress)
    _check_before_loading(cfg)
    reporter = Reporter("normal", progress=True) if progress else Reporter("silent")
    encoder = encoder or build_encoder(cfg, reporter, cache=cache)
    done = compute(cfg, encoder, reporter)
    stimuli = done.ctx.stimuli.stimuli
    frames = contract_frames(done.results, file_names={s.id: s.file_name for s in stimuli},
                             integer_ids=ids_are_integers(s.id for s in stimuli))
    frames |= layer_frames(done.results, ids_are_integers(s.id for s in stimuli))
    document = done.document()
    if done.ctx.layers:  # the layer features' similarity with the ratings, as `run` writes it
        from .evaluators.rsa import layer_rsa

        rsa = layer_rsa(done.ctx.stimuli, list(done.ctx.layers.values()), seed=done.ctx.seed)
        if rsa is not None:
            frames[LAYER_RSA_FILE], document["run"]["layer_rsa"] = rsa[0], rsa[2]
    return Results.from_document(document, frames)


def run(data: str | Path = DEMO, model=None, pretrained: str | None = None,
        scenarios: str | Sequence[str] | None = None, *, out: str | Path = "results", report: bool = True,
        preprocess=None, tokenizer=None, name: str | None = None, progress: bool = False, **options) -> Results:
    """``dirti-bench run`` from Python: evaluate as ``evaluate`` does, write the output contract (and
    the report unless ``report=False``) into ``out``, replacing it whole, and return it read back."""
    encoder = _encoder(model, preprocess, tokenizer, name)
    cfg = _config(data, None if encoder is not None else model, pretrained, scenarios, options,
                  out=Path(out), progress=progress, report=report, quiet=not progress)
    reporter = Reporter("normal", progress=True) if progress else Reporter("silent")
    return load_results(run_pipeline(cfg, encoder=encoder, reporter=reporter))


def load_results(path: str | Path) -> Results:
    """A results folder (or its results.json) that ``run`` or ``dirti-bench run`` wrote, typed;
    a file that is not one is a UserError naming it."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    doc = read_results(path)
    return Results.from_document(doc, read_contract_frames(folder))
