"""``dirti-bench bench``: image/text encoding throughput, warm re-run time and memory, in one table."""

from __future__ import annotations

import sys

from ..bench import BenchConfig, format_table, run_bench
from ..encoding.models import DEVICES
from ..encoding.precision import PRECISIONS
from ..paths import check_cache_home
from .options import non_negative_int


def add_arguments(p) -> None:
    p.add_argument("--model", default="ViT-B-32", help="open_clip model, random weights (default ViT-B-32)")
    p.add_argument("--images", type=int, default=300, help="generated 1024x768 photos (default 300, as DIRTI)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best is kept (default 3)")
    p.add_argument("--text-sample", type=int, default=240,
                   help="prompts timed on the stock 77-token path, evenly spread over the 960 (default 240)")
    p.add_argument("--precision", choices=PRECISIONS[1:],
                   help="also time the pipeline in bf16 or int8 against fp32 and print their agreement")
    p.add_argument("--no-warm", action="store_true", help="skip the cold + warm 'dirti-bench run' check")
    p.add_argument("--sweep", type=non_negative_int, default=0, metavar="N",
                   help="also time a cold 'dirti-bench run --models' of N checkpoints of --model against the "
                   "sum of their bare forwards + checkpoint loads (target <= 1.10; default 0: off)")


def run(args) -> int:
    check_cache_home()  # the generated photos and the warm-run check use the cache folder
    cfg = BenchConfig(model=args.model, images=args.images, batch_size=args.batch_size, device=args.device,
                      rounds=args.rounds, text_sample=args.text_sample, warm=not args.no_warm, precision=args.precision,
                      sweep=args.sweep)
    figures = run_bench(cfg, progress=lambda line: print(f"bench: {line}", file=sys.stderr))
    print(format_table(figures))
    return 0
