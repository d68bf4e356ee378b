"""``dirti-bench run``: one stimulus set, one model (or a list: --models), every scenario; summary,
results and report."""

from __future__ import annotations

from pathlib import Path

from ..contracts import LAYER_MODES
from ..encoding.imaging import (
    DECODE_PATHS,
    DECODE_POOLS,
    DEFAULT_DECODE,
    DEFAULT_DECODE_POOL,
    DEFAULT_GPU_DECODE,
    GPU_DECODE,
)
from ..encoding.layers import LAYERS_CHOICES
from ..encoding.model_list import parse_models_file, parse_shard, select_shard, shard_from_env
from ..encoding.models import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEVICES,
    TINY_MODEL,
)
from ..encoding.precision import DEFAULT_PRECISION, PRECISIONS
from ..errors import UserError
from ..pipeline import RunConfig
from ..pipeline import run as run_pipeline
from ..reporting.console import Reporter
from ..reporting.projection import PROJECTIONS
from ..scenarios import LAYER_CONTROLS
from .options import non_negative_int, positive_int, seed

DESCRIPTION = """\
Encode a stimulus set once (embeddings are cached, so a second run does no model forward),
run every evaluation scenario on it, print a summary table, and write results.json, the
prediction CSVs, features and report.html into --out. An --out that holds an earlier run is
replaced whole once the new run has finished; until then it stays as it was."""

EPILOG = """\
examples:
  dirti-bench run --demo
  dirti-bench run --data PATH/TO/DIRTI --pretrained PATH/TO/ViT-B-32.pt --device cuda
  dirti-bench run --data PATH/TO/DIRTI --scenarios 'zeroshot-*' 'knn-*' --out results/knn
  dirti-bench run --data PATH/TO/OASIS   (a folder with a dirti-bench.json sidecar)
  dirti-bench run --data PATH/TO/DIRTI --models models.txt --out results/sweep   (many models)"""


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, metavar="DIR",
                     help="the stimulus set: a DIRTI copy (the 'DIRTI Database' folder and its xlsx), or any "
                     "rated image set with a dirti-bench.json sidecar (default: DIRTI from the cache, "
                     "downloaded from Zenodo if missing)")
    src.add_argument("--demo", action="store_true",
                     help="a smoke run, offline: the generated demo set and the tiny dirti-tiny model with "
                     "seeded random weights; its numbers mean nothing")
    p.add_argument("--model", metavar="NAME",
                   help=f"open_clip model name (default {DEFAULT_MODEL}; {TINY_MODEL} with --demo)")
    p.add_argument("--pretrained", metavar="WEIGHTS",
                   help="open_clip tag (openai, laion2b_s34b_b79k), a checkpoint file, hf-hub:ORG/REPO, or "
                   f"'random' for seeded random weights (default {DEFAULT_PRETRAINED}; random with --demo)")
    sweep = p.add_argument_group("many models")
    sweep.add_argument("--models", type=Path, metavar="FILE",
                       help="one 'MODEL PRETRAINED' pair per line ('#' comments); each model writes "
                       "OUT/runs/<model>__<weights>/, then OUT/leaderboard.csv and a comparison report "
                       "(start a file with: dirti-bench models > models.txt)")
    sweep.add_argument("--shard", metavar="I/N",
                       help="with --models: run only the I-th of N disjoint slices of the list (default: "
                       "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT when set), merge with 'dirti-bench report OUT'; "
                       "with one model: encode only the I-th of N contiguous ranges of the images, and the "
                       "chosen scenarios' prompt texts, into the embedding cache (no evaluation, nothing in "
                       "--out), then run once without --shard (no model forward)")
    sweep.add_argument("--skip-existing", action="store_true",
                       help="skip a model whose results folder is complete for the same data, scenarios, "
                       "options and weights (resume an interrupted sweep)")
    sweep.add_argument("--reference", metavar="RUN",
                       help="the run the comparison report pairs every other run with (a folder name under "
                       "OUT/runs or a model name; default: the first model)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where the model runs; auto picks cuda, then mps, then cpu")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="results folder: new, empty, or an earlier run's (replaced whole)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seeds everything random: the demo set's photos and ratings, random weights, "
                   "bootstrap CIs and the projection (CV splits keep their own split_seed); 0 to 2**32-1")
    p.add_argument("--scenarios", nargs="+", metavar="ID",
                   help="scenario ids or globs such as 'knn-*' (default: all; see 'dirti-bench scenarios')")
    p.add_argument("--templates", nargs="+", type=Path, metavar="FILE",
                   help="prompt JSON files: a template list (with {c}) adds ensemble-<task>-<stem> on every "
                   "classification task and template-sweep-<task>-<stem>; per-class prompts add the scenario of "
                   "the task whose class names they use; {\"rating\", \"high\", \"low\"} adds "
                   "align-<rating>-zeroshot-<stem>")
    p.add_argument("--threshold", metavar="VALUE|mean+1sd",
                   help="disgust threshold of every disgust task: a rating, or mean+1sd of the set's disgust "
                   "ratings (default: 5.0, the study's)")
    p.add_argument("--ratings", nargs="+", metavar="COLUMN",
                   help="more rating columns to align with (e.g. fear_mean_all val_mean_all); each adds "
                   "align-<rating>-zeroshot and -probe scenarios")
    p.add_argument("--n-raters", type=int, metavar="N",
                   help="raters behind each mean rating, for the alignment noise ceiling (default: 30, an "
                   "assumption the report states)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N", help="images per model forward")
    p.add_argument("--workers", type=non_negative_int, default=None, metavar="N",
                   help="image decoding workers (threads, or processes with --decode-pool processes), 0 = decode "
                   "in the main thread (default: all cores between "
                   "forwards on CPU; all but one, decoding ahead, beside a GPU)")
    p.add_argument("--decode", choices=DECODE_PATHS, default=DEFAULT_DECODE,
                   help="tensor-resize: JPEGs decoded at the smallest DCT scale the model input allows, then "
                   "resize + crop as one batched tensor op; jpeg-draft: the same decode, then open_clip's PIL "
                   "steps; full: open_clip's preprocessing exactly. Both shortcuts stay within cosine 0.999 "
                   "of full (checked by dirti-bench bench)")
    p.add_argument("--decode-pool", choices=DECODE_POOLS, default=DEFAULT_DECODE_POOL,
                   help="decode images in worker threads (default: PIL decodes without the GIL) or worker "
                   "processes (nothing waits on the GIL; the same pixels bit for bit)")
    p.add_argument("--gpu-decode", choices=GPU_DECODE, default=DEFAULT_GPU_DECODE,
                   help="on: decode JPEGs on the CUDA device (torchvision's batched decode_jpeg) into the same "
                   "batched resize, other files on the CPU; needs --device cuda and --decode tensor-resize; "
                   "auto: on exactly where both hold; off (default). Its pixels differ slightly from PIL's, so it "
                   "is part of the cache key; results.json records the route as image_decode")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="fp32, bf16 (GPU/CPU with bf16 arithmetic) or int8 (CPU, image tower); a reduced "
                   "precision prints and records its agreement with fp32 on a sample of the images")
    p.add_argument("--projection", choices=PROJECTIONS,
                   help="the report's 2-D view of the image features: umap (the first use compiles "
                   "umap-learn's kernels, ~30 s once) or pca (instant) (default: umap; pca with --demo)")
    layers = p.add_argument_group("layers")
    layers.add_argument("--layers", choices=LAYERS_CHOICES, default="final",
                        help="final: the final embedding only (default); all: every block of the ViT image "
                        "tower and its pooled output too, a ridge probe per layer for every aligned rating "
                        "(scenarios layers-<rating>) and a logistic probe and a KNN per layer on the category and "
                        "disgust tasks (linear-probe-layers-<task>, knn-layers-<task>), the best layer chosen inside each training fold")
    layers.add_argument("--layer-mode", choices=LAYER_MODES, default="token",
                        help="each layer as its class token (token, default), or its whole feature map reduced "
                        "by a seeded sparse random projection to the Johnson-Lindenstrauss dimension (srp)")
    layers.add_argument("--controls", nargs="+", choices=LAYER_CONTROLS, metavar="CONTROL",
                        help="controls as scenarios of their own: pixels (low-level image statistics, no "
                        "model: pixels-<rating>), random-init (the same architecture with random weights, "
                        "3 seeds: random-init-<rating>)")
    p.add_argument("--quiet", action="store_true",
                   help="print only the summary table, skipped scenarios and the output paths")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (stage lines stay; for logs and CI)")
    p.add_argument("--no-report", action="store_true",
                   help="write results, CSVs and features but no report.md / report.html / figures "
                   "('dirti-bench report' renders it later)")


def config_from(args) -> RunConfig:
    for flag in ("model", "pretrained"):  # '' would silently mean the default model or weights
        value = getattr(args, flag)
        if value is not None and not value.strip():
            raise UserError(f"--{flag} {value!r} is empty; name one (e.g. --model ViT-B-32 --pretrained openai) "
                            f"or leave --{flag} out for the default")
    return RunConfig(data=args.data, demo=args.demo, model=args.model, pretrained=args.pretrained,
                     device=args.device, out=args.out, seed=args.seed, scenarios=args.scenarios,
                     templates=args.templates, ratings=args.ratings, threshold=args.threshold,
                     n_raters=args.n_raters, batch_size=args.batch_size, num_workers=args.workers,
                     decode=args.decode, decode_pool=args.decode_pool, gpu_decode=args.gpu_decode,
                     precision=args.precision, progress=not args.no_progress,
                     report=not args.no_report, quiet=args.quiet, projection=args.projection,
                     layers=args.layers, layer_mode=args.layer_mode, controls=args.controls)


def run(args) -> int:
    if args.models is not None:
        return run_models(args)
    if args.shard:
        return run_image_shard(args)
    for flag in ("skip_existing", "reference"):
        if getattr(args, flag):
            raise UserError(f"--{flag.replace('_', '-')} applies to a sweep; pass --models FILE with it")
    cfg = config_from(args)
    reporter = Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
    had_results = (cfg.out / "results.json").is_file()
    try:
        run_pipeline(cfg, reporter=reporter)
    except KeyboardInterrupt:
        if reporter.written is not None:
            raise KeyboardInterrupt(f"the results were already written to {reporter.written}") from None
        kept = "the earlier results there are intact" if had_results else "it was not created"
        raise KeyboardInterrupt(f"nothing was written to {cfg.out} ({kept}); embeddings computed so far stay "
                                "in the cache") from None
    return 0


def run_image_shard(args) -> int:
    """``--shard I/N`` with one model: this shard's images into the shared embedding cache."""
    from ..pipeline import encode_shard

    shard = parse_shard(args.shard)
    for flag in ("skip_existing", "reference"):
        if getattr(args, flag):
            raise UserError(f"--{flag.replace('_', '-')} applies to a sweep; pass --models FILE with it")
    cfg = config_from(args)
    reporter = Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
    try:
        outcome = encode_shard(cfg, shard, reporter)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("the shard stopped; the embeddings computed so far stay in the cache (run the "
                                "shard again to finish it)") from None
    print(outcome.summary())
    return 0


def run_models(args) -> int:
    """``--models FILE``: every model of the list (or of this shard) over one stimulus set."""
    from ..sweep import run_sweep

    if args.model or args.pretrained:
        raise UserError("give either --models FILE or --model/--pretrained, not both; "
                        "put the single model on a line of FILE instead")
    specs = parse_models_file(args.models)
    shard = parse_shard(args.shard) if args.shard else shard_from_env()
    mine = select_shard(specs, shard)
    if not mine:
        raise UserError(f"shard {shard[0]}/{shard[1]} of {args.models} holds no model ({len(specs)} listed); "
                        "use fewer shards")
    cfg = config_from(args)
    reporter = Reporter("quiet" if cfg.quiet else "normal", progress=cfg.progress)
    try:
        outcome = run_sweep(cfg, mine, skip_existing=args.skip_existing, merge=shard is None,
                            reference=args.reference, reporter=reporter)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"the sweep stopped; each finished model's results are in {cfg.out / 'runs'} "
                                "(resume with --skip-existing)") from None
    print(outcome.summary(shard))
    return outcome.exit_code
