"""``dirti-bench bench``: image/text encoding throughput, warm re-run time and memory, in one table."""

from __future__ import annotations

import sys

from ..bench import BenchConfig, format_table, run_bench
from ..encoding.models import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEVICES
from ..encoding.precision import PRECISIONS
from ..paths import check_cache_home
from .options import non_negative_int


def add_arguments(p) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help="open_clip model, with random weights")
    p.add_argument("--images", type=int, default=300, metavar="N", help="generated 1024x768 photos (DIRTI has 300)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help="images per model forward")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="alternating timing rounds; the best is kept")
    p.add_argument("--text-sample", type=int, default=240, metavar="N",
                   help="prompts timed on the stock 77-token path, evenly spread over the 960")
    p.add_argument("--precision", choices=PRECISIONS[1:],
                   help="also time the pipeline in bf16 or int8 against fp32 and print their agreement")
    p.add_argument("--no-warm", action="store_true", help="skip the cold + warm 'dirti-bench run' check on the photos")
    p.add_argument("--no-first-run", action="store_true",
                   help="skip timing a newcomer's first 'dirti-bench run --demo' (every cache empty) and its re-run")
    p.add_argument("--sweep", type=non_negative_int, default=0, metavar="N",
                   help="also time a cold 'dirti-bench run --models' of N checkpoints of --model against the "
                   "sum of their bare forwards + checkpoint loads (target <= 1.10; 0: off)")


def run(args) -> int:
    check_cache_home()  # the generated photos and the warm-run check use the cache folder
    cfg = BenchConfig(model=args.model, images=args.images, batch_size=args.batch_size, device=args.device,
                      rounds=args.rounds, text_sample=args.text_sample, warm=not args.no_warm, precision=args.precision,
                      first_run=not args.no_first_run, sweep=args.sweep)
    figures = run_bench(cfg, progress=lambda line: print(f"bench: {line}", file=sys.stderr))
    print(format_table(figures))
    return 0
