"""Options, the shared evaluation context and the end-of-session output for ``pytest benchmarks``.

At the end of the session the results directory is written the way ``dirti-bench run`` writes
it (replaced whole) and a summary of every scenario's headline metric follows pytest's own
summary; ``--benchmark-json`` holds every metric in each benchmark's ``extra_info``.

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
    config.stash[STATE] = {"results": {}, "throughput": {}, "skipped": {}, "cfg": None, "ctx": None,
                           "summary": [], "selected": set()}


def run_config(config):
    from dirti_bench.pipeline import RunConfig

    data = option(config, "--dirti-data")
    return RunConfig(data=Path(data) if data else None, demo=data is None, model=option(config, "--model"),
                     pretrained=option(config, "--pretrained"), device=option(config, "--device"),
                     out=Path(option(config, "--results-dir")), progress=False, report=True, quiet=True)


def session_scenarios(config) -> list:
    """The registry's scenarios, plus a rated set's alignment scenarios for its own rating columns."""
    from dirti_bench.data.ratedset import is_rated_set, load_rated_set
    from dirti_bench.scenarios import REGISTRY, data_scenarios

    scenarios = list(REGISTRY.values())
    data = option(config, "--dirti-data")
    if data and is_rated_set(Path(data)):
        try:
            scenarios += data_scenarios(load_rated_set(Path(data), verify=False))
        except UserError as exc:
            raise pytest.UsageError(f"error: {exc}") from None
    return scenarios


def pytest_generate_tests(metafunc):
    if "scenario" in metafunc.fixturenames:
        scenarios = session_scenarios(metafunc.config)
        metafunc.parametrize("scenario", scenarios, ids=[s.id for s in scenarios])


@pytest.fixture(scope="session")
def bench_ctx(pytestconfig):
    """Stimuli, encoder (with its embedding cache) and image features, built once per session."""
    from dirti_bench.pipeline import check_out, check_out_dir, prepare

    cfg = run_config(pytestconfig)
    try:
        check_out(cfg.out, "--results-dir")  # writable, before the encode
        check_out_dir(cfg.out, "--results-dir")  # the session's folder is replaced whole at its end
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
def record_skip(pytestconfig):
    """Keep a scenario the data cannot support (results.json's ``skipped``)."""
    skipped = pytestconfig.stash[STATE]["skipped"]

    def record(scenario_id: str, reason: str) -> None:
        skipped[scenario_id] = reason

    return record


@pytest.fixture
def record_throughput(pytestconfig):
    """Keep a throughput measurement for results.json's ``run.throughput``."""
    throughput = pytestconfig.stash[STATE]["throughput"]

    def record(name: str, value: dict) -> None:
        throughput[name] = value

    return record


def write_session_results(session, state) -> Path:
    """The CLI's own writer: the same results.json, CSVs, comparisons and report, swapped in whole."""
    from dirti_bench.pipeline import projection_for, write_run
    from dirti_bench.reporting.console import summary_text
    from dirti_bench.results import read_results

    cfg, ctx = state["cfg"], state["ctx"]
    results = list(state["results"].values())
    out = write_run(cfg.out, ctx, results, extra_info={"runner": "pytest benchmarks",
                                                      "throughput": state["throughput"]},
                    skipped=state["skipped"], projection=projection_for(cfg))
    state["summary"] += summary_text(read_results(out)).strip("\n").splitlines()
    state["summary"].append(f"{len(results)} scenario results written to {out} (report: {out / 'report.html'}); "
                            "--benchmark-json holds every metric in each benchmark's extra_info")
    return out


def pytest_collection_finish(session):
    """The scenarios this session sets out to run (after -k / -m): the drift check requires exactly these."""
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state["selected"] = {item.callspec.params["scenario"].id for item in session.items
                             if "scenario" in getattr(getattr(item, "callspec", None), "params", {})}


def check_drift(state, out: Path, baseline: str, selected) -> bool:
    """The CLI's rules: every selected scenario of the baseline must be in the results (so -k disgust
    requires only the disgust scenarios), a check that compared nothing is an error (exit 2).
    Its lines join the session's summary; False on drift."""
    from dirti_bench.reporting.drift import check, load_baseline, require_comparison
    from dirti_bench.results import read_results

    report = check(read_results(out), load_baseline(Path(baseline)), baseline_name=baseline, scope=selected,
                   results_name=str(out))
    require_comparison(report, baseline, str(out))
    state["summary"] += list(report.notes())  # scenarios missing on either side, another model or dataset
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
    if not state or state["ctx"] is None or not state["results"]:
        if baseline and state and not session.config.option.collectonly:
            if state.get("selected"):  # a drift check must not pass on nothing
                state["summary"].append(f"error: the drift check against {baseline} compared no metric: no "
                                        "selected scenario produced a result in this session")
                session.exitstatus = 2
            else:
                state["summary"].append(f"no scenario selected, so no drift check against {baseline}")
        return  # nothing ran (e.g. --collect-only): leave the results directory alone
    try:
        out = write_session_results(session, state)
        if baseline and not check_drift(state, out, baseline, state["selected"]):
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
