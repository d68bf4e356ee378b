"""Options, the shared evaluation context and the end-of-session output for ``pytest benchmarks``.

At the end of the session the results directory is written the way ``dirti-bench run`` writes
it (replaced whole) and a summary of every scenario's headline metric follows pytest's own
summary; ``--benchmark-json`` holds every metric in each benchmark's ``extra_info``. With a
models file every case runs once per model (its id starts with the model), and the session
writes what ``dirti-bench run --models`` writes: ``runs/<model>__<weights>/`` per model, the
leaderboard and the comparison report.

Every option also reads an environment variable (the option wins):

  --dirti-data DIR      DIRTI_BENCH_DATA        DIRTI copy (default: the generated demo set)
  --model NAME          DIRTI_BENCH_MODEL       open_clip model (default dirti-tiny)
  --pretrained TAG      DIRTI_BENCH_PRETRAINED  weights tag/path, or random (default random, seeded)
  --models FILE         DIRTI_BENCH_MODELS      a models file: every case runs once per model
  --device DEV          DIRTI_BENCH_DEVICE      auto, cpu, cuda, mps (default auto)
  --results-dir DIR     DIRTI_BENCH_RESULTS_DIR where the session's results go (default results/benchmarks)
  --drift-baseline F    DIRTI_BENCH_DRIFT_BASELINE  results.json to check for drift (fails the session)
  --accept-differences  DIRTI_BENCH_ACCEPT_DIFFERENCES=1  compare with the baseline even where the
                        configuration differs (otherwise exit 2 "not comparable", as check-drift)
  --layers all|final    DIRTI_BENCH_LAYERS      all: every layer too, layers-<rating> cases (default final)
  --layer-mode M        DIRTI_BENCH_LAYER_MODE  token (default) or srp: how each layer becomes one vector
  --controls LIST       DIRTI_BENCH_CONTROLS    comma-separated: pixels, random-init (cases of their own)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dirti_bench.encoding.model_list import ModelSpec, parse_models_file, with_slugs
from dirti_bench.encoding.models import DEVICES
from dirti_bench.errors import UserError

OPTIONS = {  # option -> (environment variable, default, help)
    "--dirti-data": ("DIRTI_BENCH_DATA", None, "local DIRTI copy (default: the generated demo set)"),
    "--model": ("DIRTI_BENCH_MODEL", "dirti-tiny", "open_clip model name (default dirti-tiny)"),
    "--pretrained": ("DIRTI_BENCH_PRETRAINED", "random", "open_clip tag, checkpoint path or random (default)"),
    "--models": ("DIRTI_BENCH_MODELS", None, "models file ('MODEL PRETRAINED' per line): every case runs per model"),
    "--device": ("DIRTI_BENCH_DEVICE", "auto", f"one of {', '.join(DEVICES)} (default auto)"),
    "--results-dir": ("DIRTI_BENCH_RESULTS_DIR", "results/benchmarks", "results directory of this session"),
    "--drift-baseline": ("DIRTI_BENCH_DRIFT_BASELINE", None, "baseline results.json; drift fails the session"),
    "--accept-differences": ("DIRTI_BENCH_ACCEPT_DIFFERENCES", None, "compare with --drift-baseline even where "
                             "dataset, label space, threshold, options, model or weights differ (otherwise the "
                             "session exits 2: not comparable)"),
    "--layers": ("DIRTI_BENCH_LAYERS", "final", "all: every layer of the image tower too (layers-<rating> cases)"),
    "--layer-mode": ("DIRTI_BENCH_LAYER_MODE", "token", "token (class token per layer) or srp (sparse random "
                     "projection of the whole map)"),
    "--controls": ("DIRTI_BENCH_CONTROLS", None, "comma-separated controls: pixels, random-init"),
}
SWITCHES = ("--accept-differences",)  # on/off options; their variable is on unless empty, 0, false or no
STATE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("dirti-bench")
    for flag, (env, _, help_text) in OPTIONS.items():
        kind = {"action": "store_true"} if flag in SWITCHES else {}
        group.addoption(flag, default=None, help=f"{help_text} [env {env}]", **kind)


def option(config, flag: str):
    env, default, _ = OPTIONS[flag]
    if flag in SWITCHES:
        return bool(config.getoption(flag)) or os.environ.get(env, "").strip().lower() not in ("", "0", "false", "no")
    return config.getoption(flag) or os.environ.get(env) or default


def model_specs(config) -> list[ModelSpec]:
    """The session's models: the --models file, else the one --model/--pretrained pair."""
    models = option(config, "--models")
    if models is None:
        return with_slugs([ModelSpec(option(config, "--model"), option(config, "--pretrained"))])
    try:
        return parse_models_file(Path(models))
    except UserError as exc:
        raise pytest.UsageError(f"error: {exc}") from None


def case_id(spec: ModelSpec) -> str:
    """The model's part of a case id: ``ViT-B-32-openai`` in ``test_scenario[ViT-B-32-openai-zeroshot-disgust]``."""
    return spec.slug.replace("__", "-")


def pytest_configure(config):
    device = option(config, "--device")
    if device not in DEVICES:
        raise pytest.UsageError(f"--device {device!r} unknown; choose one of {', '.join(DEVICES)}")
    config.stash[STATE] = {"specs": model_specs(config), "multi": option(config, "--models") is not None,
                           "runs": {}, "current": None, "summary": [], "selected": set()}


def layer_settings(config) -> dict:
    """--layers, --layer-mode and --controls as RunConfig fields (a bad value stops the session)."""
    from dirti_bench.contracts import LAYER_MODES
    from dirti_bench.encoding.layers import LAYERS_CHOICES
    from dirti_bench.scenarios import LAYER_CONTROLS

    layers, mode = option(config, "--layers"), option(config, "--layer-mode")
    controls = [c.strip() for c in (option(config, "--controls") or "").split(",") if c.strip()]
    for flag, value, choices in (("--layers", layers, LAYERS_CHOICES), ("--layer-mode", mode, LAYER_MODES),
                                 *(("--controls", c, LAYER_CONTROLS) for c in controls)):
        if value not in choices:
            raise pytest.UsageError(f"error: {flag} {value!r} unknown; choose one of {', '.join(choices)}")
    return {"layers": layers, "layer_mode": mode, "controls": controls or None}


def run_config(config, spec: ModelSpec | None = None):
    from dirti_bench.pipeline import RunConfig

    spec = spec or config.stash[STATE]["specs"][0]
    data = option(config, "--dirti-data")
    return RunConfig(data=Path(data) if data else None, demo=data is None, model=spec.model,
                     pretrained=spec.pretrained, device=option(config, "--device"),
                     out=Path(option(config, "--results-dir")), progress=False, report=True, quiet=True,
                     **layer_settings(config))


def session_scenarios(config) -> list:
    """The registry's scenarios, plus a rated set's alignment scenarios for its own rating columns."""
    from dirti_bench.data.ratedset import is_rated_set, load_rated_set
    from dirti_bench.data.stimuli import DISGUST_RATING
    from dirti_bench.scenarios import (
        REGISTRY,
        classifier_control_scenarios,
        data_scenarios,
        knn_layer_scenarios,
        layer_scenarios,
        probe_layer_scenarios,
    )

    scenarios = list(REGISTRY.values())
    data = option(config, "--dirti-data")
    columns = [DISGUST_RATING]
    if data and is_rated_set(Path(data)):
        try:
            rated = load_rated_set(Path(data), verify=False)
        except UserError as exc:
            raise pytest.UsageError(f"error: {exc}") from None
        scenarios += data_scenarios(rated)
        columns += list(rated.aligned_ratings)
    layers = layer_settings(config)
    if layers["layers"] == "all" or layers["controls"]:
        scenarios += [s for column in dict.fromkeys(columns)
                      for s in layer_scenarios(column, layers["layer_mode"], layers["layers"] == "all",
                                               layers["controls"] or ())]
        if layers["layers"] == "all":  # the classifiers per layer, as `run --layers all` adds them
            scenarios += probe_layer_scenarios(layers["layer_mode"]) + knn_layer_scenarios(layers["layer_mode"])
        scenarios += classifier_control_scenarios(layers["controls"] or (), layers["layer_mode"])
    return scenarios


def pytest_generate_tests(metafunc):
    """Cases per model: a scenario case of a model list carries the model in its id; one model keeps
    the bare scenario id, so ``-k disgust`` selects the same cases either way."""
    state = metafunc.config.stash[STATE]
    specs, multi = state["specs"], state["multi"]
    if "scenario" in metafunc.fixturenames:
        cases = [(spec, sc) for spec in specs for sc in session_scenarios(metafunc.config)]
        ids = [f"{case_id(spec)}-{sc.id}" if multi else sc.id for spec, sc in cases]
        metafunc.parametrize(("model_spec", "scenario"), cases, ids=ids)
    elif "model_spec" in metafunc.fixturenames:
        metafunc.parametrize("model_spec", specs, ids=[case_id(s) for s in specs])


def _spec_of(request) -> ModelSpec:
    callspec = getattr(getattr(request, "node", None), "callspec", None)
    params = callspec.params if callspec is not None else {}
    return params.get("model_spec") or request.config.stash[STATE]["specs"][0]


def model_run(config, spec: ModelSpec) -> dict:
    """The session's state of one model: built when its first case runs; the model used before is
    released first (one model in memory at a time; cases are ordered by model). A model that cannot
    load fails its own cases, and the other models still run."""
    from dirti_bench.cli import flag_hint
    from dirti_bench.pipeline import check_out, check_out_dir, prepare

    state = config.stash[STATE]
    runs = state["runs"]
    if spec.slug not in runs:
        previous = runs.get(state["current"])
        if previous is not None and previous["ctx"] is not None:
            previous["ctx"].encoder.encoder.release()
        cfg = run_config(config, spec)
        try:
            check_out(cfg.out, "results_dir")  # writable, before the encode
            if not state["multi"]:
                check_out_dir(cfg.out, "results_dir")  # the session's folder is replaced whole at its end
            ctx, error = prepare(cfg), None
        except UserError as exc:
            if not state["multi"]:
                pytest.exit(f"error: {exc}{flag_hint(exc)}", returncode=2)
            ctx, error = None, f"error: {spec.label} ({spec.source}): {exc}"
        runs[spec.slug] = {"spec": spec, "cfg": cfg, "ctx": ctx, "error": error, "results": {}, "skipped": {},
                           "throughput": {}}
    state["current"] = spec.slug
    run = runs[spec.slug]
    if run["error"]:
        pytest.fail(run["error"], pytrace=False)
    return run


@pytest.fixture
def bench_ctx(request):
    """Stimuli, encoder (with its embedding cache) and image features of this case's model."""
    return model_run(request.config, _spec_of(request))["ctx"]


@pytest.fixture
def record_result(request):
    """Keep a checked ScenarioResult for the model's results directory."""
    results = model_run(request.config, _spec_of(request))["results"]

    def record(result) -> None:
        results[result.id] = result

    return record


@pytest.fixture
def record_skip(request):
    """Keep a scenario the data cannot support (results.json's ``skipped``)."""
    skipped = model_run(request.config, _spec_of(request))["skipped"]

    def record(scenario_id: str, reason: str) -> None:
        skipped[scenario_id] = reason

    return record


@pytest.fixture
def record_throughput(request):
    """Keep a throughput measurement for results.json's ``run.throughput``."""
    throughput = model_run(request.config, _spec_of(request))["throughput"]

    def record(name: str, value: dict) -> None:
        throughput[name] = value

    return record


def write_session_results(session, state) -> Path:
    """The CLI's own writers: one results folder (the same results.json, CSVs, comparisons and report,
    swapped in whole), or with a models file ``runs/<model>__<weights>/`` per model plus the
    leaderboard and comparison report of ``dirti-bench run --models``."""
    from dirti_bench.pipeline import projection_for, write_run
    from dirti_bench.reporting.console import summary_text
    from dirti_bench.reporting.runs_report import RUNS_DIR, write_comparison
    from dirti_bench.results import read_results

    out = Path(option(session.config, "--results-dir"))
    done = [run for run in state["runs"].values() if run["results"]]
    for run in done:
        folder = out / RUNS_DIR / run["spec"].slug if state["multi"] else out
        extra = {"runner": "pytest benchmarks", "throughput": run["throughput"]}
        if state["multi"]:
            extra["sweep"] = {"model_source": run["spec"].source}
        write_run(folder, run["ctx"], list(run["results"].values()), extra_info=extra, skipped=run["skipped"],
                  projection=projection_for(run["cfg"]))
        if not state["multi"]:
            state["summary"] += summary_text(read_results(folder)).strip("\n").splitlines()
        state["summary"].append(f"{len(run['results'])} scenario results of {run['spec'].label} written to {folder} "
                                f"(report: {folder / 'report.html'})")
    if state["multi"]:
        report = write_comparison([out], out)
        state["summary"].append(f"leaderboard and comparison of {len(done)} models: {out / 'leaderboard.csv'}, "
                                f"{report.with_name('report.html')}")
    state["summary"].append("--benchmark-json holds every metric in each benchmark's extra_info")
    return out


def pytest_collection_finish(session):
    """The scenarios this session sets out to run (after -k / -m): the drift check requires exactly these."""
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state["selected"] = {item.callspec.params["scenario"].id for item in session.items
                             if "scenario" in getattr(getattr(item, "callspec", None), "params", {})}


def check_drift(state, out: Path, baseline: str, selected, accept_differences: bool = False) -> bool:
    """The CLI's rules: every selected scenario of the baseline must be in the results (so -k disgust
    requires only the disgust scenarios), a check that compared nothing is an error (exit 2), and
    results of another configuration (dataset, label space, threshold, options, model, weights:
    ``validity.comparability`` through ``require_comparable``) are "not comparable", exit 2 naming
    each difference, unless ``--accept-differences``. Its lines join the session's summary; False on drift."""
    from dirti_bench.reporting.drift import (
        check,
        load_baseline,
        require_comparable,
        require_comparison,
    )
    from dirti_bench.results import read_results

    report = check(read_results(out), load_baseline(Path(baseline)), baseline_name=baseline, scope=selected,
                   results_name=str(out))
    require_comparison(report, baseline, str(out))
    if not accept_differences:
        try:
            require_comparable(report, baseline, str(out))
        except UserError as exc:  # the library names no flag: name this plugin's own
            raise UserError(f"{exc} (pytest option --accept-differences, or DIRTI_BENCH_ACCEPT_DIFFERENCES=1)",
                            exc.option) from None
    state["summary"] += list(report.notes())  # scenarios missing on either side; accepted differences
    if not report.ok:
        state["summary"].append(f"drift against {baseline}: {report.summary(baseline)}")
        if report.rows:
            state["summary"].append(report.table())
        return False
    state["summary"].append(f"no drift against {baseline}: {report.checked} metrics within tolerance")
    return True


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(STATE, None)
    baseline = option(session.config, "--drift-baseline")
    if not state or not any(run["results"] for run in state["runs"].values()):
        if baseline and state and not session.config.option.collectonly:
            if state.get("selected"):  # a drift check must not pass on nothing
                state["summary"].append(f"error: the drift check against {baseline} compared no metric: no "
                                        "selected scenario produced a result in this session")
                session.exitstatus = 2
            else:
                state["summary"].append(f"no scenario selected, so no drift check against {baseline}")
        return  # nothing ran (e.g. --collect-only): leave the results directory alone
    try:
        if baseline and state["multi"]:
            raise UserError("--drift-baseline compares one model's results with a baseline; drop --models, or "
                            "check each OUT/runs/* with 'dirti-bench check-drift'")
        out = write_session_results(session, state)
        accept = option(session.config, "--accept-differences")
        if baseline and not check_drift(state, out, baseline, state["selected"], accept):
            session.exitstatus = 1
    except UserError as exc:
        state["summary"].append(f"error: {exc}")
        session.exitstatus = 2


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's timing table: the metrics close the session
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The session's scenario metrics in a section of their own, after pytest's progress lines."""
    state = config.stash.get(STATE, None)
    if not state or not state["summary"]:
        return
    terminalreporter.write_sep("=", "dirti-bench scenario metrics")
    for line in state["summary"]:
        terminalreporter.write_line(line)
