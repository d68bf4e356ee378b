"""dirti-bench: CLIP-family models and prompt engineering on the DIRTI disgust image set.

Data flows one way: stimuli -> label space -> prompts -> encoder (+cache)
-> evaluators -> results -> report / drift check.

The Python API (``dirti_bench.api``) is loaded on first use of a name below, so ``import
dirti_bench`` stays cheap (no torch, no scikit-learn)::

    import dirti_bench as db
    r = db.evaluate(data="demo", model="dirti-tiny", pretrained="random", scenarios=["zeroshot-*"])
    print(r.metrics_frame())
"""

__version__ = "0.1.0"

# name -> the module that defines it (imported when the name is first used: PEP 562)
_LAZY = {
    **dict.fromkeys(("evaluate", "run", "load_results", "list_scenarios", "demo_path", "Results",
                     "RunInfo", "ScenarioOutcome", "RUN_OPTIONS"), "dirti_bench.api"),
    **dict.fromkeys(("Scenario", "Options", "ZeroShotOptions", "ThresholdSweepOptions", "TemplateSweepOptions",
                     "KnnSplitOptions", "KnnCvOptions", "ProbeCvOptions", "AlignZeroShotOptions",
                     "AlignProbeOptions", "AlignLayersOptions", "PixelBaselineOptions", "RandomInitOptions",
                     "EvaluatorSpec", "register_evaluator"), "dirti_bench.contracts"),
    "RunConfig": "dirti_bench.pipeline",
    "ModelObjectEncoder": "dirti_bench.encoding.models",
    "UserError": "dirti_bench.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dirti_bench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
