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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from .contracts import Scenario
from .data.ratedset import is_rated_set
from .encoding.models import ModelObjectEncoder
from .errors import UserError
from .pipeline import RunConfig, build_encoder, compute, demo_dir, plan_scenarios
from .pipeline import run as run_pipeline
from .reporting.console import Reporter
from .results import LAYER_RSA_FILE, contract_frames, ids_are_integers, layer_frames
from .results_types import Results, RunInfo, ScenarioOutcome, load_results
from .scenarios import REGISTRY

DEMO = "demo"
DIRTI = "dirti"
# What evaluate()/run() set themselves; every other RunConfig field is a keyword option.
_SET_HERE = {"data", "demo", "model", "pretrained", "scenarios", "out", "progress", "report", "quiet"}
RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _SET_HERE)
# The typed results live in the results layer (results_types), so the report reads them too.
__all__ = ["RUN_OPTIONS", "Results", "RunInfo", "ScenarioOutcome", "demo_path", "evaluate", "list_scenarios",
           "load_results", "run"]


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
