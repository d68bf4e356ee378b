"""Every JSON file the suite reads is schema-checked: a wrong type is one ``error:`` line naming the
file and the key (exit 2), never an AttributeError or TypeError from deep inside a reader."""

from __future__ import annotations

import copy
import gzip
import json

import numpy as np
import pytest

from dirti_bench.cli import main
from dirti_bench.data.fetch import parse_record
from dirti_bench.encoding.cache import EmbeddingCache
from helpers import write_json

VALID = {
    "schema_version": 1,
    "run": {"model": "dirti-tiny", "pretrained": "random", "seed": 0, "smoke_run": True,
            "versions": {"python": "3"}, "precision_check": None},
    "scenarios": {
        "zeroshot-baseline": {"task": "category", "labels": ["food", "death"], "n": 4,
                              "metrics": {"accuracy": 0.5, "f1_macro": None},
                              "per_class": {"food": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}},
                              "confusion": [[1, 1], [1, 1]], "dropped_classes": [], "options": {},
                              "ci": {"accuracy": [0.25, 0.75]}},
    },
    "comparisons": [],
}


def _edit(doc: dict, dotted: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


def report_cli(tmp_path, doc, capsys) -> tuple[int, str]:
    res = write_json(tmp_path / "res" / "results.json", doc).parent
    code = main(["report", str(res), "--out", str(tmp_path / "report")])
    return code, capsys.readouterr().err


def test_the_valid_document_renders(tmp_path, capsys):
    code, err = report_cli(tmp_path, VALID, capsys)
    assert code == 0, err


@pytest.mark.parametrize(("key", "value"), [
    ("run", 5),
    ("scenarios", ["zeroshot-baseline"]),
    ("scenarios.zeroshot-baseline", 3),
    ("scenarios.zeroshot-baseline.metrics", [0.5]),
    ("scenarios.zeroshot-baseline.metrics.accuracy", "high"),
    ("scenarios.zeroshot-baseline.task", ["category"]),
    ("scenarios.zeroshot-baseline.labels", "food"),
    ("scenarios.zeroshot-baseline.per_class", {"food": 0.5}),
    ("scenarios.zeroshot-baseline.confusion", [[1, "x"], [1, 1]]),
    ("scenarios.zeroshot-baseline.dropped_classes", "none"),
    ("scenarios.zeroshot-baseline.options", []),
    ("scenarios.zeroshot-baseline.ci", {"accuracy": 0.3}),
    ("run.seed", "zero"),
    ("run.versions", "1.0"),
    ("run.precision_check", {"precision": "bf16"}),
    ("comparisons", {"a": "b"}),
])
def test_report_on_a_wrong_type_is_one_line_naming_file_and_key(tmp_path, capsys, key, value):
    code, err = report_cli(tmp_path, _edit(VALID, key, value), capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert str(tmp_path / "res" / "results.json") in err and key.split(".")[-1] in err
    assert not (tmp_path / "report").exists()


def test_report_on_damaged_side_files_is_one_line(tmp_path, capsys):
    res = write_json(tmp_path / "res" / "results.json", VALID).parent
    (res / "predictions.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    assert main(["report", str(res), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "predictions.csv.gz lacks the columns" in err
    (res / "predictions.csv.gz").unlink()
    np.savez(res / "features.npz", features=np.zeros(3, np.float32), stimulus=np.array(["1", "2", "3"]))
    assert main(["report", str(res), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "features.npz holds features of shape (3,)" in err


@pytest.mark.parametrize(("record", "problem"), [
    ({"files": [{"key": "DIRTI.zip", "checksum": "md5:" + "0" * 32, "links": ["http://x"]}]}, "'links'"),
    ({"files": [{"key": "DIRTI.zip", "checksum": "md5:" + "0" * 32, "links": {"self": 5}}]}, "not a URL"),
    ({"files": {"entries": {"DIRTI.zip": "md5:0"}}}, "not an object"),
])
def test_zenodo_record_of_the_wrong_shape_is_a_value_error_the_fetch_reports(record, problem):
    """fetch turns ValueError from parse_record into one 'Zenodo record ... is not usable' line."""
    with pytest.raises(ValueError, match=problem):
        parse_record(record, "https://zenodo.org")


@pytest.mark.parametrize("content", ["[1, 2]", "\"text\"", "{broken", "\xff\xfe"])
def test_cache_meta_that_is_not_an_object_reads_as_empty(tmp_path, content):
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.dir.mkdir(parents=True)
    (cache.dir / "meta.json").write_bytes(content.encode("latin-1"))
    assert cache.read_meta() == {}
    cache.write_meta({"weights_sha256": "abc"})
    assert json.loads((cache.dir / "meta.json").read_text())["weights_sha256"] == "abc"
