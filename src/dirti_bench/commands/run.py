from __future__ import annotations

from pathlib import Path

from ..encoding.imaging import DECODE_PATHS, DEFAULT_DECODE
from ..encoding.model_list import parse_models_file, parse_shard, select_shard, shard_from_env
from ..encoding.models import DEVICES
from ..encoding.precision import DEFAULT_PRECISION, PRECISIONS
from ..errors import UserError
from ..pipeline import RunConfig
from ..pipeline import run as run_benchmark
from .options import non_negative_int, positive_int, seed


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="local DIRTI copy (folder with 'DIRTI Database' and the xlsx)")
    src.add_argument("--demo", action="store_true",
                     help="generated demo set + dirti-tiny with seeded random weights (a smoke run)")
    p.add_argument("--model", help="open_clip model name (default ViT-B-32; dirti-tiny with --demo)")
    p.add_argument("--pretrained", help="open_clip tag (openai, laion2b_s34b_b79k), checkpoint PATH, "
                   "hf-hub:ORG/REPO, or 'random' (default openai; random with --demo)")
    sweep = p.add_argument_group("many models")
    sweep.add_argument("--models", type=Path, metavar="FILE",
                       help="one 'MODEL PRETRAINED' pair per line ('#' comments); each model writes "
                       "OUT/runs/<model>__<weights>/, then OUT/leaderboard.csv and a comparison report "
                       "(start a file with: dirti-bench models > models.txt)")
    sweep.add_argument("--shard", metavar="I/N",
                       help="run only the I-th of N disjoint slices of the --models list (default: "
                       "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT when set); merge with 'dirti-bench report OUT'")
    sweep.add_argument("--skip-existing", action="store_true",
                       help="skip a model whose results directory is complete for the same data, scenarios "
                       "and options (resume an interrupted sweep)")
    sweep.add_argument("--reference", metavar="RUN",
                       help="the run the comparison report pairs every other run with (a folder name under "
                       "OUT/runs or a model name; default: the first model)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default ./results)")
    p.add_argument("--seed", type=seed, default=0, help="seed of every random step, 0 to 2**32-1 (default 0)")
    p.add_argument("--scenarios", nargs="+", metavar="ID", help="scenario ids or globs (default: all)")
    p.add_argument("--templates", nargs="+", type=Path, metavar="FILE",
                   help="prompt JSON files: a template list (with {c}) adds ensemble-<task>-<stem> on every "
                   "classification task and template-sweep-<task>-<stem>; per-class prompts add the scenario of "
                   "the task whose class names they use; {\"rating\", \"high\", \"low\"} adds "
                   "align-<rating>-zeroshot-<stem>")
    p.add_argument("--threshold", metavar="VALUE|mean+1sd",
                   help="disgust threshold of every disgust task: a rating (default 5.0, the study's) or "
                   "mean+1sd of the set's disgust ratings")
    p.add_argument("--ratings", nargs="+", metavar="COLUMN",
                   help="more rating columns to align with (e.g. fear_mean_all val_mean_all): "
                   "adds align-<rating>-zeroshot/-probe scenarios")
    p.add_argument("--n-raters", type=int, metavar="N",
                   help="raters behind each mean rating, for the alignment noise ceiling (default 30, assumed)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="image decoding threads, 0 = decode in the main thread (default: all cores between forwards on CPU; all but one, decoding ahead, beside a GPU)")
    p.add_argument("--decode", choices=DECODE_PATHS, default=DEFAULT_DECODE,
                   help="tensor-resize (default: jpeg-draft's decode, then resize + crop as one batched uint8 "
                   "tensor op), jpeg-draft (JPEGs decoded at the smallest DCT scale the model input allows, then "
                   "open_clip's PIL steps) or full (open_clip's preprocessing on full decodes); "
                   "dirti-bench bench checks cosine >= 0.999 to full")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="fp32 (default), bf16 (GPU/CPU with bf16 arithmetic) or int8 (CPU, image tower); "
                   "a reduced precision prints and records its agreement with fp32 on a sample of the images")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-report", action="store_true")


def run(args) -> int:
    if args.models is not None:
        return run_models(args)
    for flag in ("shard", "skip_existing", "reference"):
        if getattr(args, flag):
            raise UserError(f"--{flag.replace('_', '-')} applies to a sweep; pass --models FILE with it")
    out = run_benchmark(config_from(args))
    print(f"results written to {out}")
    return 0


def config_from(args) -> RunConfig:
    return RunConfig(data=args.data, demo=args.demo, model=args.model, pretrained=args.pretrained,
                    device=args.device, out=args.out, seed=args.seed, scenarios=args.scenarios,
                    templates=args.templates, ratings=args.ratings, threshold=args.threshold, n_raters=args.n_raters,
                    batch_size=args.batch_size,
                    num_workers=args.workers, decode=args.decode, precision=args.precision,
                    progress=not args.no_progress, report=not args.no_report)


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
    outcome = run_sweep(cfg, mine, skip_existing=args.skip_existing, merge=shard is None, reference=args.reference)
    counts = f"{len(outcome.done)} run, {len(outcome.skipped)} skipped, {len(outcome.failed)} failed"
    where = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    print(f"{where}{len(mine)} models ({counts}); results in {outcome.out / 'runs'}")
    for spec, _ in outcome.failed:
        print(f"failed: {spec.label} ({spec.source})")
    if outcome.report is not None:
        print(f"leaderboard: {outcome.out / 'leaderboard.csv'}; comparison report: "
              f"{outcome.report.with_name('report.html')}")
    elif shard is not None:
        print(f"merge the shards with: dirti-bench report {outcome.out}")
    elif outcome.done or outcome.skipped:
        print(f"leaderboard: {outcome.out / 'leaderboard.csv'} (no comparison report: --no-report)")
    return outcome.exit_code
