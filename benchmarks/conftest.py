"""Options, the shared evaluation context and the end-of-session output for ``pytest benchmarks``.

Every option also reads an environment variable (the option wins):

  --dirti-data DIR      DIRTI_BENCH_DATA        DIRTI copy (default: the generated demo set)
  --model NAME          DIRTI_BENCH_MODEL       open_clip model (default dirti-tiny)
  --pretrained TAG      DIRTI_BENCH_PRETRAINED  weights tag/path, or random (default random, seeded)
  --device DEV          DIRTI_BENCH_DEVICE      auto, cpu, cuda, mps (default auto)
  --results-dir DIR     DIRTI_BENCH_RESULTS_DIR where the session's results go (default results/benchmarks)
  --drift-baseline F    DIRTI_BENCH_DRIFT_BASELINE  results.json to check for drift (fails the session)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dirti_bench.encoding.models import DEVICES
from dirti_bench.errors import UserError

OPTIONS = {  # option -> (environment variable, default, help)
    "--dirti-data": ("DIRTI_BENCH_DATA", None, "local DIRTI copy (default: the generated demo set)"),
    "--model": ("DIRTI_BENCH_MODEL", "dirti-tiny", "open_clip model name (default dirti-tiny)"),
    "--pretrained": ("DIRTI_BENCH_PRETRAINED", "random", "open_clip tag, checkpoint path or random (default)"),
    "--device": ("DIRTI_BENCH_DEVICE", "auto", f"one of {', '.join(DEVICES)} (default auto)"),
    "--results-dir": ("DIRTI_BENCH_RESULTS_DIR", "results/benchmarks", "results directory of this session"),
    "--drift-baseline": ("DIRTI_BENCH_DRIFT_BASELINE", None, "baseline results.json; drift fails the session"),
}
STATE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("dirti-bench")
    for flag, (env, _, help_text) in OPTIONS.items():
        group.addoption(flag, default=None, help=f"{help_text} [env {env}]")


def option(config, flag: str):
    env, default, _ = OPTIONS[flag]
    return config.getoption(flag) or os.environ.get(env) or default


def pytest_configure(config):
    device = option(config, "--device")
    if device not in DEVICES:
        raise pytest.UsageError(f"--device {device!r} unknown; choose one of {', '.join(DEVICES)}")
    config.stash[STATE] = {"results": {}, "throughput": {}, "cfg": None, "ctx": None, "selected": set()}


def run_config(config):
    from dirti_bench.pipeline import RunConfig

    data = option(config, "--dirti-data")
    return RunConfig(data=Path(data) if data else None, demo=data is None, model=option(config, "--model"),
                     pretrained=option(config, "--pretrained"), device=option(config, "--device"),
                     out=Path(option(config, "--results-dir")), progress=False, report=True)


@pytest.fixture(scope="session")
def bench_ctx(pytestconfig):
    """Stimuli, encoder (with its embedding cache) and image features, built once per session."""
    from dirti_bench.pipeline import check_out, prepare

    cfg = run_config(pytestconfig)
    try:
        check_out(cfg.out, "--results-dir")
        ctx = prepare(cfg)
    except UserError as exc:
        pytest.exit(f"error: {exc}", returncode=2)
    state = pytestconfig.stash[STATE]
    state["cfg"], state["ctx"] = cfg, ctx
    return ctx


@pytest.fixture
def record_result(pytestconfig):
    """Keep a checked ScenarioResult for the session's results directory."""
    results = pytestconfig.stash[STATE]["results"]

    def record(result) -> None:
        results[result.id] = result

    return record


@pytest.fixture
def record_throughput(pytestconfig):
    """Keep a throughput measurement for results.json's ``run.throughput``."""
    throughput = pytestconfig.stash[STATE]["throughput"]

    def record(name: str, value: dict) -> None:
        throughput[name] = value

    return record


def _say(session, line: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)


def write_session_results(session, state) -> Path:
    """The CLI's own writer: the same results.json, predictions, comparisons and report."""
    from dirti_bench.pipeline import write_run

    cfg, ctx = state["cfg"], state["ctx"]
    results = list(state["results"].values())
    out = write_run(cfg.out, ctx, results, extra_info={"runner": "pytest benchmarks",
                                                      "throughput": state["throughput"]})
    _say(session, f"dirti-bench: {len(results)} scenario results written to {out}")
    return out


def pytest_collection_finish(session):
    """The scenarios this session sets out to run (after -k / -m): the drift check requires exactly these."""
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state["selected"] = {item.callspec.params["scenario"].id for item in session.items
                             if "scenario" in getattr(getattr(item, "callspec", None), "params", {})}


def check_drift(session, out: Path, baseline: str, selected) -> None:
    """The CLI's rules: every selected scenario of the baseline must be in the results (so -k disgust
    requires only the disgust scenarios), a check that compared nothing is an error (exit 2)."""
    from dirti_bench.reporting.drift import check, load_baseline, require_comparison
    from dirti_bench.results import read_results

    report = check(read_results(out), load_baseline(Path(baseline)), baseline_name=baseline, scope=selected,
                   results_name=str(out))
    require_comparison(report, baseline, str(out))
    for note in report.notes():  # scenarios missing on either side, another model or dataset
        _say(session, f"dirti-bench: {note}")
    if report.ok:
        _say(session, f"dirti-bench: {report.summary(baseline)}")
        return
    _say(session, f"dirti-bench: drift against {baseline}: {report.summary(baseline)}")
    if report.rows:
        _say(session, report.table())
    session.exitstatus = 1


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(STATE, None)
    baseline = option(session.config, "--drift-baseline")
    if not state or state["ctx"] is None or not state["results"]:
        if baseline and state and not session.config.option.collectonly:
            if state.get("selected"):  # a drift check must not pass on nothing
                _say(session, f"error: the drift check against {baseline} compared no metric: no selected "
                              "scenario produced a result in this session")
                session.exitstatus = 2
            else:
                _say(session, f"dirti-bench: no scenario selected, so no drift check against {baseline}")
        return  # nothing ran (e.g. --collect-only): leave the results directory alone
    try:
        out = write_session_results(session, state)
        if baseline:
            check_drift(session, out, baseline, state.get("selected", set()))
    except UserError as exc:
        _say(session, f"error: {exc}")
        session.exitstatus = 2
