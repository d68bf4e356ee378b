"""A run's output folder appears whole or not at all: written beside, then swapped in. No file of
an earlier run survives a new one; a failure or Ctrl-C leaves the earlier results intact and the
message says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dirti_bench.atomic import StagedDir
from dirti_bench.cli import main

ZEROSHOT = ["--scenarios", "zeroshot-baseline"]


def demo(out: Path, *args: str) -> int:
    return main(["run", "--demo", "--no-progress", "--out", str(out), *args])


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def leftovers(folder: Path) -> list[str]:
    """Staging or old folders beside ``folder``."""
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def test_staged_dir_replaces_the_target_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.png").write_text("old")
    with StagedDir(target) as staged:
        (staged.path / "new.txt").write_text("new")
        assert (target / "stale.png").exists()  # untouched until the commit
        assert staged.commit() is True
    assert tree(target) == {"new.txt"} and not leftovers(target)
    with StagedDir(tmp_path / "fresh") as staged:
        (staged.path / "a").write_text("a")
        assert staged.commit() is False


def test_staged_dir_leaves_the_target_alone_on_failure_or_interrupt(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "results.json").write_text("{}")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), StagedDir(target) as staged:
            (staged.path / "half.csv").write_text("x")
            raise error
        assert tree(target) == {"results.json"} and not leftovers(target)


def test_a_link_to_a_folder_keeps_pointing_at_the_new_results(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with StagedDir(link) as staged:
        (staged.path / "new.txt").write_text("new")
        staged.commit()
    assert link.is_symlink() and tree(link.resolve()) == {"new.txt"}


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_a_subset_run_leaves_no_figure_or_file_of_the_earlier_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert demo(out, "--scenarios", "zeroshot-*", "knn-split-baseline") == 0
    assert (out / "figures" / "confusion-knn-split-baseline.png").is_file()
    assert demo(out, *ZEROSHOT) == 0
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["confusion-zeroshot-baseline.png", "pca.png",
                                                                  "reliability-zeroshot-baseline.png"]
    assert set(json.loads((out / "results.json").read_text())["scenarios"]) == {"zeroshot-baseline"}
    # --no-report after a report: the old report does not sit next to the new results
    assert demo(out, *ZEROSHOT, "--no-report") == 0
    assert tree(out) == {"results.json", "predictions.csv.gz", "alignment_predictions.csv", "features.npz",
                         "stimuli.csv", "prompts.csv", "sweeps.csv", "sweep_predictions.csv.gz", "probabilities.csv.gz"}
    assert not leftovers(out)
    assert capsys.readouterr().err.count(f"replaced the earlier results in {out}") == 2


def test_an_out_with_other_files_is_refused_before_any_encoding(tmp_path, capsys, monkeypatch):
    from dirti_bench.encoding.cache import CachedEncoder

    def no_encoding(*_args, **_kwargs):
        raise AssertionError("images were encoded before --out was checked")

    monkeypatch.setattr(CachedEncoder, "encode_images", no_encoding)
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.docx").write_text("precious")
    assert demo(out, *ZEROSHOT) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: results folder {out} holds files that are not dirti-bench results "
                                               "(chapter1.docx)")
    assert tree(out) == {"chapter1.docx"}
    (tmp_path / "file").write_text("x")
    assert demo(tmp_path / "file", *ZEROSHOT) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["dirti_bench.pipeline.evaluate", "dirti_bench.pipeline.write_report"])
def test_ctrl_c_leaves_the_earlier_results_intact_and_says_so(tmp_path, capsys, monkeypatch, where):
    out = tmp_path / "out"
    assert demo(out, *ZEROSHOT) == 0
    before = {name: (out / name).read_bytes() for name in tree(out) if (out / name).is_file()}
    capsys.readouterr()

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    assert demo(out, "--scenarios", "zeroshot-*") == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: interrupted; nothing was written to {out} (the earlier results there are intact); "
                       "embeddings computed so far stay in the cache")
    assert {name: (out / name).read_bytes() for name in before} == before and tree(out) == set(before) | {"figures"}
    assert not leftovers(out)


def test_ctrl_c_on_a_first_run_creates_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "new"
    monkeypatch.setattr("dirti_bench.pipeline.write_report", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert demo(out, *ZEROSHOT) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"error: interrupted; nothing was written to {out} (it was not created)")
    assert not out.exists() and not leftovers(out)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_report_never_replaces_a_figures_folder_it_did_not_write(tmp_path, capsys):
    from test_report import make_results_dir

    results = make_results_dir(tmp_path / "res", features=False)
    paper = tmp_path / "paper"
    (paper / "figures").mkdir(parents=True)
    (paper / "figures" / "mine.png").write_bytes(b"precious")
    assert main(["report", str(results), "--out", str(paper)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files that no dirti-bench report wrote" in err[0]
    assert tree(paper) == {"figures", "figures/mine.png"}
    # a folder holding an earlier report is the report's own: its figures are replaced whole
    assert main(["report", str(results), "--out", str(results)]) == 0
    (results / "figures" / "stale.png").write_bytes(b"old")
    assert main(["report", str(results), "--out", str(results)]) == 0
    assert not (results / "figures" / "stale.png").exists()


def test_results_nested_in_out_survive_its_replacement(tmp_path, capsys):
    """pytest benchmarks writes results/benchmarks inside the run's default --out results."""
    out = tmp_path / "results"
    assert demo(out, *ZEROSHOT, "--no-report") == 0
    nested = out / "benchmarks"
    assert demo(nested, *ZEROSHOT, "--no-report") == 0
    (out / "stale.txt").write_text("from an earlier run")  # only the earlier run's own files go
    assert demo(out, *ZEROSHOT, "--no-report") == 0
    assert (nested / "results.json").is_file() and not (out / "stale.txt").exists()
