from __future__ import annotations

from pathlib import Path

from ..encoding.imaging import DECODE_PATHS, DEFAULT_DECODE
from ..encoding.models import DEVICES
from ..encoding.precision import DEFAULT_PRECISION, PRECISIONS
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
    cfg = RunConfig(data=args.data, demo=args.demo, model=args.model, pretrained=args.pretrained,
                    device=args.device, out=args.out, seed=args.seed, scenarios=args.scenarios,
                    templates=args.templates, ratings=args.ratings, threshold=args.threshold, n_raters=args.n_raters,
                    batch_size=args.batch_size,
                    num_workers=args.workers, decode=args.decode, precision=args.precision,
                    progress=not args.no_progress, report=not args.no_report)
    out = run_benchmark(cfg)
    print(f"results written to {out}")
    return 0
