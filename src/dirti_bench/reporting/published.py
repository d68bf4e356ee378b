"""The original study's published numbers, kept as data (see reports/study.md).

Tables 1 and 2 are macro averages as printed. The study called
``classification_report(predictions, truth)``, so its CLIP precision and
recall are swapped and its "support" counts predictions; the corrected
numbers are re-derived from its printed per-class table below.
"""

from __future__ import annotations

import numpy as np

from ..results_types import Results

HEADLINE = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

# (table, method, the scenario that runs the same protocol here, accuracy, P, R, F1 as printed)
PUBLISHED_TABLES: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("Table 1 (baseline)", "KNN (k=6)", "knn-split-baseline", 0.76, 0.75, 0.74, 0.74),
    ("Table 1 (baseline)", "CLIP zero-shot", "zeroshot-baseline", 0.55, 0.55, 0.50, 0.49),
    ("Table 2 (disgust)", "KNN (k=12)", "knn-split-disgust", 0.69, 0.62, 0.57, 0.57),
    ("Table 2 (disgust)", "CLIP zero-shot", "zeroshot-disgust", 0.17, 0.23, 0.17, 0.13),
)

# The study's CLIP baseline per-class table as printed: class -> (precision, recall, f1, "support").
# Because truth and predictions were swapped, printed precision is the true recall, printed
# recall the true precision, and "support" the number of predictions of that class.
PRINTED_CLIP_BASELINE_PER_CLASS: dict[str, tuple[float, float, float, int]] = {
    "food": (0.80, 0.77, 0.78, 52),
    "animals": (0.74, 0.58, 0.65, 64),
    "body products": (0.02, 0.07, 0.03, 15),
    "injuries/infections": (0.88, 0.56, 0.68, 79),
    "death": (0.18, 0.56, 0.27, 16),
    "hygiene": (0.66, 0.45, 0.53, 74),
}

SWAP_NOTE = (
    "The study's CLIP precision and recall are swapped: its classification report was called with "
    "predictions first, so 'support' counted predictions. Re-derived from its per-class table: "
    "accuracy {accuracy:.3f}, macro precision {precision_macro:.3f}, macro recall {recall_macro:.3f}."
)


def rederived_clip_baseline() -> dict[str, float]:
    """True accuracy and macro P/R of the study's CLIP baseline from its printed per-class table."""
    printed = np.array([v[:2] + (v[3],) for v in PRINTED_CLIP_BASELINE_PER_CLASS.values()], dtype=float)
    true_recall, true_precision, n_predicted = printed[:, 0], printed[:, 1], printed[:, 2]
    # correct predictions of a class = its true precision x how often it was predicted
    correct = np.round(true_precision * n_predicted).sum()
    return {"accuracy": float(correct / n_predicted.sum()),
            "precision_macro": float(true_precision.mean()),
            "recall_macro": float(true_recall.mean())}


def swap_note() -> str:
    return SWAP_NOTE.format(**rederived_clip_baseline())


# ---------------------------------------------------------------- is this DIRTI?

STUDY_WORDING = "study wording"
DEFAULT_WORDING = "default wording"


def set_categories(results: Results) -> set[str] | None:
    """The stimulus set's categories as the results record them: the labels of a category task (or of
    an alignment scenario, which lists the set's categories)."""
    for outcome in results:
        if outcome.task in ("category", "alignment") and outcome.labels:
            return {str(c) for c in outcome.labels}
    return None


def is_dirti(categories, disgust_column) -> bool:
    """DIRTI (or a DIRTI-shaped subset such as the demo), recognised by its contents, never its folder's
    name: exactly DIRTI's six categories and DIRTI's disgust rating column."""
    from ..data.dirti import DIRTI_CATEGORIES
    from ..data.stimuli import DISGUST_RATING

    return categories is not None and set(categories) == set(DIRTI_CATEGORIES) and disgust_column == DISGUST_RATING


def is_dirti_doc(results: Results | dict) -> bool:
    """Whether results (or a results.json document) come from DIRTI or a DIRTI-shaped subset."""
    from ..data.stimuli import DISGUST_RATING

    results = Results.of(results)
    return is_dirti(set_categories(results), results.run.details.get("disgust_column", DISGUST_RATING))


def is_dirti_run(run) -> bool:
    """``is_dirti`` of a run as the report reads it (``reporting.report.RunData``): the categories of
    its stimuli.csv where loaded (whatever scenarios ran), else those its scenarios record."""
    from ..data.stimuli import DISGUST_RATING

    stimuli = getattr(run, "stimuli", None)
    if stimuli is not None and "category" in stimuli:
        categories = set(stimuli["category"].dropna().astype(str))
    else:
        categories = set_categories(run.results)
    return is_dirti(categories, run.run.get("disgust_column", DISGUST_RATING))


def wording_name(results: Results | dict) -> str:
    """What the fixed "This is a photo of {c}" wording is called: the study's on DIRTI, else the set's
    default wording (built from its class_phrases where given)."""
    return STUDY_WORDING if is_dirti_doc(results) else DEFAULT_WORDING
