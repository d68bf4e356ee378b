"""Label-set checks on a finished classification result (run by every benchmark case).

Each check targets one of the original study's mistakes: prompts in another
order than the truth ids, a report built as ``classification_report(pred,
truth)`` (its "support" counted predictions), and classes that silently
vanished from the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import LabelConsistencyError
from ..labels import LabelSpace, check_consistency


def _fail(result, what: str) -> None:
    raise LabelConsistencyError(f"scenario {result.id}: {what}")


def check_result(result, space: LabelSpace, prompt_classes: Sequence[str] | None = None) -> None:
    """Raise unless ``result`` (a ScenarioResult) is consistent with the task's label ``space``.

    ``space`` is the space the scenario started from; an evaluator may have
    dropped classes from it (listed in ``dropped_classes``), never reordered it.
    """
    labels = list(result.labels)
    if prompt_classes is not None and list(prompt_classes) != labels:
        check_consistency(space, prompt_classes)  # names the first misplaced or missing class
        _fail(result, f"prompt classes {list(prompt_classes)} differ from the result's labels {labels}")
    dropped = list(result.dropped_classes)
    if set(labels) & set(dropped):
        _fail(result, f"classes {sorted(set(labels) & set(dropped))} are both labels and dropped")
    if set(labels) | set(dropped) != set(space.names) | set(space.dropped):
        _fail(result, f"labels + dropped classes {sorted(set(labels) | set(dropped))} do not cover the "
                      f"{space.task} classes {sorted(set(space.names) | set(space.dropped))}")
    if labels != [n for n in space.names if n in set(labels)]:
        _fail(result, f"labels {labels} are not in the {space.task} label-space order {space.names}")
    if list(result.per_class) != labels:
        _fail(result, f"per-class report lists {list(result.per_class)}, the label space {labels}")
    preds = result.predictions
    outside = sorted((set(preds["y_true"]) | set(preds["y_pred"])) - set(labels))
    if outside:
        _fail(result, f"predictions hold classes {outside} outside the label space {labels}")
    true_counts = preds["y_true"].value_counts().reindex(labels, fill_value=0).to_numpy()
    pred_counts = preds["y_pred"].value_counts().reindex(labels, fill_value=0).to_numpy()
    support = np.array([result.per_class[n]["support"] for n in labels])
    if not np.array_equal(support, true_counts):
        _fail(result, f"per-class support {support.tolist()} is not the true count per class "
                      f"{true_counts.tolist()} (a report called with predictions first counts predictions)")
    confusion = np.asarray(result.confusion)
    if confusion.shape != (len(labels), len(labels)):
        _fail(result, f"confusion matrix is {confusion.shape}, not square over the {len(labels)} labels")
    if not (np.array_equal(confusion.sum(axis=1), true_counts)
            and np.array_equal(confusion.sum(axis=0), pred_counts)):
        _fail(result, "confusion matrix rows/columns do not follow the label order (rows true, columns predicted)")
    if result.n != len(preds):
        _fail(result, f"n={result.n} but {len(preds)} predictions")
