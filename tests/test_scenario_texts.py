"""``scenario_texts``: every text a scenario will encode, listed from the stimuli alone (image shards
encode them ahead, so the evaluation after the shards needs no model). Each listing is checked
against what its evaluator really asks the encoder for."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from dirti_bench import contracts
from dirti_bench.contracts import (
    EvalContext,
    EvaluatorSpec,
    Scenario,
    evaluators,
    register_evaluator,
)
from dirti_bench.evaluators.registry import run_evaluator, scenario_texts
from dirti_bench.pipeline import scenario_text_calls
from dirti_bench.scenarios import REGISTRY, prompt_file_plan

WIDTH = 16


class RecordingEncoder:
    """Records each ``encode_texts`` call; a text's vector is seeded by the text (any image fails)."""

    forward_calls = 0

    def __init__(self):
        self.calls: list[list[str]] = []

    def identity(self) -> dict:
        return {"model": "recording"}

    def run_info(self) -> dict:
        return {"model": "recording"}

    def encode_images(self, paths):
        raise AssertionError("an evaluator encoded images: they come from the run's features")

    def encode_texts(self, texts):
        self.calls.append(list(texts))
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        vecs = np.stack([np.random.default_rng(s).standard_normal(WIDTH) for s in seeds]).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _context(stimuli) -> EvalContext:
    features = np.random.default_rng(0).standard_normal((len(stimuli), WIDTH)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return EvalContext(stimuli, RecordingEncoder(), features, seed=0)


def _listed_and_asked(scenario, stimuli) -> tuple[list[list[str]], list[list[str]]]:
    listed = scenario_texts(scenario, EvalContext(stimuli, None, np.zeros((len(stimuli), 0)), seed=0))
    ctx = _context(stimuli)  # a fresh one: what the listing read must not come from the evaluation
    run_evaluator(scenario, ctx)
    return listed, ctx.encoder.calls


@pytest.mark.parametrize("scenario_id", list(REGISTRY))
def test_every_registry_scenario_lists_exactly_the_texts_its_evaluator_encodes(scenario_id, demo_stimuli):
    listed, asked = _listed_and_asked(REGISTRY[scenario_id], demo_stimuli)
    assert listed == asked  # the same texts, in the same calls and order (so the same embeddings)


def test_the_listing_covers_prompt_files_of_every_kind(demo_stimuli, tmp_path):
    files = {"mine.json": ["a photo of {c}.", "{c}, up close"],
             "gross.json": {"disgusting": ["something revolting", "yuck"], "not disgusting": ["something ordinary"]},
             "yuck.json": {"rating": "disg_mean_all", "high": ["gross"], "low": ["fine", "ok"]}}
    made = []
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
        made += prompt_file_plan(tmp_path / name, demo_stimuli).scenarios
    assert {s.evaluator for s in made} == {"zeroshot", "template-sweep", "align-zeroshot"}
    for scenario in made:
        listed, asked = _listed_and_asked(scenario, demo_stimuli)
        assert listed == asked and asked, scenario.id


def test_every_built_in_evaluator_says_what_it_encodes():
    assert [name for name, spec in evaluators().items() if spec.texts is None] == []


def test_an_evaluator_that_does_not_say_is_named_not_guessed(monkeypatch, demo_stimuli):
    monkeypatch.setattr(contracts, "EVALUATORS", dict(contracts.EVALUATORS))
    spec = evaluators()["knn-cv"]
    register_evaluator(EvaluatorSpec("knn-cv-plugin", spec.options, spec.evaluate, spec.check_runnable,
                                     spec.describe))
    chosen = [REGISTRY["zeroshot-baseline"], Scenario("plugin", "category", "knn-cv-plugin"),
              REGISTRY["align-disgust-zeroshot"]]
    calls, unknown = scenario_text_calls(chosen, _context(demo_stimuli))
    assert unknown == ["plugin"]
    assert calls == [scenario_texts(chosen[0], _context(demo_stimuli))[0],
                     scenario_texts(chosen[2], _context(demo_stimuli))[0]]
