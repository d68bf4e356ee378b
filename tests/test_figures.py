"""Each figure stands alone on a slide: titles, labels, colour scale and order read from the matplotlib
objects the report draws (not from pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from dirti_bench.labels import build_label_space
from dirti_bench.reporting import figures
from dirti_bench.reporting.report import write_report
from test_report import make_results_dir

DEMO_DISGUST_ORDER = ["food", "disgusting food", "animals", "body products", "disgusting body products",
                      "injuries/infections", "disgusting injuries/infections", "death", "disgusting death",
                      "hygiene", "disgusting hygiene"]


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """Every figure the report draws, by file name (PNG bytes are made as usual)."""
    made = []
    real_png = figures.png

    def keep(fig):
        made.append(fig)
        return real_png(fig)

    monkeypatch.setattr(figures, "png", keep)
    monkeypatch.setenv("DIRTI_BENCH_JOBS", "1")  # drawn here, where the patched png sees them
    results = make_results_dir(tmp_path / "res")
    write_report([results], tmp_path / "report", projection="pca")
    return {title(fig).split("\n")[0]: fig for fig in made}


def title(fig) -> str:
    """The figure's own title (projection panels) or its axes' title."""
    return fig.get_suptitle() or fig.get_axes()[0].get_title()


def test_the_label_space_puts_each_categorys_plain_and_disgusting_class_side_by_side(demo_stimuli):
    space = build_label_space(demo_stimuli, "disgust")
    assert space.names[:6] == ["food", "animals", "body products", "injuries/infections", "death", "hygiene"]
    assert space.display_order() == DEMO_DISGUST_ORDER  # "disgusting animals" is dropped (empty)
    category = build_label_space(demo_stimuli, "category")
    assert category.display_order() == category.names


def test_every_figure_names_the_scenario_model_weights_and_dataset(drawn):
    # the constant zeroshot-disgust (every stimulus "disgusting food") carries its flags in its title
    assert set(drawn) == {"zeroshot-baseline: confusion matrix",
                          "zeroshot-disgust: confusion matrix — flags: degenerate, below-chance",
                          "align-disgust-zeroshot: Spearman ρ = 0.91 (95% CI 0.85 to 0.95); noise ceiling 0.95",
                          "PCA of 60 image embeddings — dirti-tiny · random weights — smoke run · constructed"}
    for fig in drawn.values():
        assert "dirti-tiny · random weights — smoke run · constructed" in title(fig), title(fig)
    pca = drawn["PCA of 60 image embeddings — dirti-tiny · random weights — smoke run · constructed"]
    assert pca.get_axes()[0].get_xlabel().startswith("PC 1 (") and pca.get_axes()[1].get_title() == "by disg_mean_all"


def test_confusion_matrix_colours_row_shares_annotates_counts_and_names_dropped_classes(drawn):
    fig = drawn["zeroshot-disgust: confusion matrix — flags: degenerate, below-chance"]
    ax, colourbar = fig.get_axes()
    order = ["food", "disgusting food", "disgusting body products", "never seen"]
    assert [t.get_text() for t in ax.get_xticklabels()] == order and [t.get_text() for t in ax.get_yticklabels()] == order
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert colourbar.get_ylabel() == "share of the true class (row)"
    shares = ax.get_images()[0].get_array()
    counts = np.array([[int(t.get_text()) for t in ax.texts[i * 4:(i + 1) * 4]] for i in range(4)])
    assert counts[:, 1].sum() == 20 and counts.sum() == 20  # every stimulus predicted "disgusting food"
    rows = counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(shares, np.divide(counts, rows, out=np.zeros((4, 4)), where=rows > 0))
    assert any("dropped (no stimuli in the label space): disgusting animals" in t.get_text() for t in ax.texts)


def test_confusion_matrix_order_follows_display_order_not_label_order():
    labels = ["food", "animals", "disgusting food", "disgusting animals"]
    confusion = [[1, 0, 2, 0], [0, 3, 0, 0], [0, 0, 4, 0], [0, 5, 0, 6]]
    order = ["food", "disgusting food", "animals", "disgusting animals"]
    fig = figures.confusion_figure(labels, confusion, "t", order=order)
    ax = fig.get_axes()[0]
    counts = [int(t.get_text()) for t in ax.texts]
    assert counts == [1, 2, 0, 0, 0, 4, 0, 0, 0, 0, 3, 0, 0, 0, 5, 6]
    assert not [t for t in ax.texts if "dropped" in t.get_text()]
    figures.png(fig)


def test_alignment_scatter_says_what_the_score_is_with_a_fit_line_over_the_rating_scale(drawn):
    fig = drawn["align-disgust-zeroshot: Spearman ρ = 0.91 (95% CI 0.85 to 0.95); noise ceiling 0.95"]
    ax = fig.get_axes()[0]
    assert ax.get_ylabel() == "P('This is a disgusting photo') vs 'This is a photo'"
    assert ax.get_xlabel() == "mean human rating (disg_mean_all)"
    low, high = ax.get_xlim()
    assert low < 1.0 < 1.3 and 8.7 < 9.0 < high  # DIRTI's 1-9 scale, whatever the data's range
    line = next(line for line in ax.get_lines() if line.get_label() == "least-squares line")
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
    np.testing.assert_allclose(line.get_ydata(), slope * np.array([1.0, 9.0]) + intercept)
    assert len(points) == 60  # one point per stimulus


def test_the_probes_scatter_has_the_identity_line():
    fig = figures.alignment_figure(np.array([1.0, 5, 9]), np.array([2.0, 5, 8]), ["a", "a", "b"], "t",
                                   "rating", "ridge prediction", scale=(1, 9), identity_line=True)
    ax = fig.get_axes()[0]
    line = next(line for line in ax.get_lines() if line.get_label().startswith("y = x"))
    np.testing.assert_allclose(line.get_xdata(), line.get_ydata())
    assert ax.get_ylim()[0] < 1 and ax.get_ylim()[1] > 9
    figures.png(fig)


def test_report_states_the_noise_ceilings_assumption(tmp_path):
    results = make_results_dir(tmp_path / "res", features=False)
    md = write_report([results], results).read_text()
    line = next(line for line in md.splitlines() if line.startswith("Noise ceiling:"))
    assert "30 raters per image" in line and "assumed 30" in line and "disg_SD_all" in line


def test_figures_drawn_in_worker_processes_are_the_bytes_drawn_one_after_another(tmp_path):
    """The report draws its figures in worker processes; each is drawn from its own arguments, so the
    files (and the HTML that embeds them) are those of a serial drawing."""
    results = make_results_dir(tmp_path / "res")
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    write_report([results], serial, projection="pca", jobs=1, figure_cache=False)
    write_report([results], parallel, projection="pca", jobs=2, figure_cache=False)
    names = sorted(p.name for p in (serial / "figures").iterdir())
    assert len(names) >= 3 and names == sorted(p.name for p in (parallel / "figures").iterdir())
    for name in names:
        assert (serial / "figures" / name).read_bytes() == (parallel / "figures" / name).read_bytes(), name
    assert (serial / "report.html").read_bytes() == (parallel / "report.html").read_bytes()


def test_drawing_the_figures_shows_progress_through_the_reporter(tmp_path, capsys):
    from dirti_bench.reporting.console import Reporter

    write_report([make_results_dir(tmp_path / "res")], tmp_path / "report", projection="pca", jobs=2,
                 reporter=Reporter("normal", progress=False))
    count = len(list((tmp_path / "report" / "figures").iterdir()))
    assert f"drawing figures: {count}" in capsys.readouterr().err
    write_report([make_results_dir(tmp_path / "res2")], tmp_path / "report2", projection="pca", jobs=2,
                 reporter=Reporter("quiet"))
    assert "figures" not in capsys.readouterr().err


def test_a_warm_report_reuses_unchanged_figures_and_redraws_changed_ones(tmp_path, monkeypatch):
    from dirti_bench.reporting.figure_cache import drawing_key
    from dirti_bench.reporting.render import Drawing

    results = make_results_dir(tmp_path / "res")
    write_report([results], tmp_path / "first", projection="pca", jobs=1, figure_cache=False)
    write_report([results], tmp_path / "cold", projection="pca", jobs=1)  # fills the cache home
    drawn = []
    monkeypatch.setattr(figures, "draw", lambda d: drawn.append(d) or pytest.fail("an unchanged figure was redrawn"))
    write_report([results], tmp_path / "warm", projection="pca", jobs=1)
    assert drawn == []
    names = sorted(p.name for p in (tmp_path / "first" / "figures").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "warm" / "figures").iterdir())
    for name in names:
        assert (tmp_path / "first" / "figures" / name).read_bytes() == (tmp_path / "warm" / "figures" / name).read_bytes()
    same = Drawing("confusion_figure", (["a", "b"], [[1, 0], [0, 1]], "t"))
    assert drawing_key(same) == drawing_key(Drawing("confusion_figure", (["a", "b"], [[1, 0], [0, 1]], "t")))
    assert drawing_key(same) != drawing_key(Drawing("confusion_figure", (["a", "b"], [[1, 0], [1, 1]], "t")))


def test_a_warm_report_whose_figures_are_all_cached_does_not_import_matplotlib(tmp_path):
    """Reading cached figures back needs no matplotlib (its import is ~1 s of a warm re-run)."""
    import subprocess
    import sys

    results = make_results_dir(tmp_path / "res")
    write_report([results], tmp_path / "cold", projection="pca", jobs=1)  # fills this test's cache home
    code = ("import sys; from pathlib import Path; from dirti_bench.reporting.report import write_report; "
            f"write_report([Path({str(results)!r})], Path({str(tmp_path / 'warm')!r}), projection='pca', jobs=1); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    for name in sorted(p.name for p in (tmp_path / "cold" / "figures").iterdir()):
        assert (tmp_path / "cold" / "figures" / name).read_bytes() == (tmp_path / "warm" / "figures" / name).read_bytes()


def test_the_report_command_says_it_projects_and_draws_unless_quiet(tmp_path, capsys):
    from dirti_bench.cli import main

    results = make_results_dir(tmp_path / "res")
    assert main(["report", str(results), "--out", str(tmp_path / "a"), "--projection", "pca", "--no-progress"]) == 0
    err = capsys.readouterr().err
    count = len(list((tmp_path / "a" / "figures").iterdir()))
    assert "projection: PCA of " in err and f"drawing figures: {count}" in err, err
    assert main(["report", str(results), "--out", str(tmp_path / "b"), "--projection", "pca", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "projection" not in err and "figures" not in err, err
