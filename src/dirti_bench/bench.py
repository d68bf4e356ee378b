"""Performance measurements behind ``dirti-bench bench`` and ``benchmarks/test_performance.py``.

Every figure is a ratio or a count measured within one process run, so a busy
machine shifts both sides of a ratio alike; rounds alternate the two sides and
the best round of each is kept (the least disturbed one).

  images   bare ``encode_image`` on pre-made tensors vs the whole pipeline
           (read, decode, preprocess, forward, normalise), same batch size
  decode   the decoding alone (read, decode, resize, normalise; no forward) in worker
           threads vs worker processes, and the whole pipeline with processes; on CUDA
           the pipeline with JPEGs decoded on the GPU vs on the CPU
  texts    the truncated forward on 12 classes x 80 templates vs ``model.encode_text``
           (77 tokens, so the same cost for any prompt) on an evenly spread sample
  warm     ``dirti-bench run`` twice in a fresh cache home: the second run's
           wall time and forward count; peak RSS of the first (cold) run; then a
           third, warm run with ``--no-report``: every scenario, without the report
  first    a newcomer's first ``dirti-bench run --demo``, every cache empty (dirti-bench's
           home, numba's compiled kernels, matplotlib's font cache): seconds until the
           summary table is printed and until the whole run (report included) ends;
           then the same command again (warm)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .allocator import keep_freed_memory
from .data.demo import ensure_demo
from .data.dirti import DIRTI_CATEGORIES, load_dirti
from .encoding.imaging import DEFAULT_DECODE, decode_ahead, default_workers, encode_image_paths
from .encoding.models import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    ClipEncoder,
    describe_device,
    fp32_twin,
    known_model,
    random_weights_quietly,
    register_model_configs,
    resolve_device,
)
from .encoding.precision import category_agreement, check_precision, spread_indices
from .encoding.text import encode_texts, truncation_blocker
from .errors import UserError
from .labels import candidate_classes
from .paths import cache_home
from .prompts import fill, load_ensemble
from .reporting.projection import numba_cache_dir

PHOTO_SIZE = (1024, 768)  # DIRTI's photos


@dataclass
class BenchConfig:
    model: str = DEFAULT_MODEL
    images: int = 300
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "auto"
    rounds: int = 3
    text_sample: int = 240  # stock prompts cost the same whatever their length, so a spread sample suffices
    seed: int = 0
    warm: bool = True
    first_run: bool = True  # time a newcomer's first 'dirti-bench run --demo' and its re-run
    precision: str | None = None  # bf16 / int8: also time it against fp32 and print the agreement
    sweep: int = 0  # models in a timed cold sweep (0: no sweep timing)


# ---------------------------------------------------------------- inputs

def photo_split(n: int) -> tuple[int, int]:
    """(disgust, neutral) images per category so 6 categories hold >= n photos (DIRTI: 40 + 10)."""
    if n < 6:
        raise UserError(f"images {n} is too small; use at least 6 (one photo per category)", "images")
    per = -(-n // 6)
    neutral = max(1, per // 5)
    return per - neutral, neutral


def bench_photos(n: int, seed: int = 0, root: Path | None = None) -> Path:
    """A DIRTI-layout set of >= n generated 1024x768 JPEGs, made once and kept in the cache home."""
    disgust, neutral = photo_split(n)
    folder = (root or cache_home() / "bench") / f"photos-v2-{disgust}-{neutral}-seed{seed}"
    return ensure_demo(folder, seed=seed, n_disgust=disgust, n_neutral=neutral, size=PHOTO_SIZE)


def photo_paths(photos, n: int) -> list[Path]:
    """The first ``n`` photos of a loaded bench set (``load_dirti(bench_photos(n))``)."""
    return [s.path for s in photos.stimuli][:n]


def prompt_ensemble() -> list[str]:
    """12 classes x 80 templates: CLIP's ImageNet templates over the disgust task's classes."""
    classes = candidate_classes("disgust", DIRTI_CATEGORIES)
    return [fill(t, c.phrase) for c in classes for t in load_ensemble("clip80").templates]



def load_model(name: str, device: str, seed: int = 0):
    import open_clip
    import torch

    register_model_configs()
    torch.manual_seed(seed)
    with random_weights_quietly():
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


# ---------------------------------------------------------------- measurements

def _best_rate(n: int, runs: list[Callable], rounds: int) -> list[float]:
    """Items/s of each callable, best of ``rounds`` rounds; odd rounds run in reverse order, so a
    machine speeding up or slowing down over the rounds favours no side."""
    best = [0.0] * len(runs)
    for r in range(rounds):
        order = list(enumerate(runs))
        for i, fn in (order[::-1] if r % 2 else order):
            start = time.perf_counter()
            fn()
            best[i] = max(best[i], n / (time.perf_counter() - start))
    return best


def _unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


class _PairedForward:
    """Stands in for the model inside the pipeline: after each pipeline forward it runs the bare
    forward on the pre-made batch of the same index and times it, so both sides are measured seconds
    apart rather than in separate runs (a shared machine's forward speed can swing by +-10% within
    seconds). Valid only where nothing decodes during a forward, i.e. CPU mode."""

    def __init__(self, model, batches: list, device: str):
        self.model, self.visual = model, getattr(model, "visual", model)
        self.batches, self.device = batches, device
        self.index, self.raw_s = 0, 0.0

    def encode_image(self, images):
        first = self.index % 2 == 0  # alternate which of the pair runs first
        if not first:
            feats = self.model.encode_image(images)
        start = time.perf_counter()
        self.model.encode_image(self.batches[self.index].to(self.device))
        self.raw_s += time.perf_counter() - start
        if first:
            feats = self.model.encode_image(images)
        self.index += 1
        return feats


def measure_images(model, preprocess, paths: list[Path], batch_size: int, device: str, rounds: int) -> dict:
    """Pipeline vs bare forward, two ways: whole runs alternated (best of ``rounds`` each), and, in
    CPU mode, paired per batch (median of ``rounds`` runs), the ``image_ratio`` target figure there."""
    import torch
    from PIL import Image

    tensors = _preprocessed(preprocess, paths)  # open_clip's own preprocessing, full decode
    batches = [tensors[i:i + batch_size] for i in range(0, len(tensors), batch_size)]
    out: dict[str, np.ndarray] = {}

    def raw():
        with torch.inference_mode():
            feats = [model.encode_image(batch.to(device)).float().cpu() for batch in batches]
        out["raw"] = torch.cat(feats).numpy()

    def pipeline():
        out["pipeline"] = encode_image_paths(model, preprocess, paths, device, batch_size, None, False)[0]

    def hand_written():
        """The plain open_clip loop a user would write: PIL open, preprocess, stack, encode_image."""
        with torch.inference_mode():
            for i in range(0, len(paths), batch_size):
                batch = torch.stack([preprocess(Image.open(p)) for p in paths[i:i + batch_size]])
                model.encode_image(batch.to(device))

    def paired() -> float:
        """Bare-forward seconds / pipeline seconds (= pipeline img/s / raw img/s) in one interleaved run."""
        stand_in = _PairedForward(model, batches, device)
        start = time.perf_counter()
        with torch.inference_mode():
            encode_image_paths(stand_in, preprocess, paths, device, batch_size, None, False)
        return stand_in.raw_s / (time.perf_counter() - start - stand_in.raw_s)

    raw_rate, pipe_rate, hand_rate = _best_rate(len(paths), [raw, pipeline, hand_written], rounds)
    whole_runs = pipe_rate / raw_rate
    paired_ratio = float(np.median([paired() for _ in range(rounds)])) if decode_ahead(device) == 0 else None
    cosine = (_unit(out["raw"]) * _unit(out["pipeline"])).sum(axis=1)
    return {"images": len(paths), "batch_size": batch_size, "decode": DEFAULT_DECODE,
            "raw_img_s": raw_rate, "pipeline_img_s": pipe_rate,
            "image_ratio": paired_ratio if paired_ratio is not None else whole_runs,
            "image_ratio_method": "paired per batch" if paired_ratio is not None else "whole runs",
            "image_ratio_whole_runs": whole_runs,
            "hand_written_img_s": hand_rate, "hand_written_ratio": hand_rate / raw_rate,
            "decode_min_cosine": float(cosine.min())}


def _no_forward():
    """A model whose forward costs nothing: the pipeline around it is the decoding alone."""
    import torch

    class NoForward(torch.nn.Module):
        def encode_image(self, images):
            return images.new_ones((len(images), 1))

    return NoForward()


def measure_decode(model, preprocess, paths: list[Path], batch_size: int, device: str, rounds: int,
                   raw_img_s: float) -> dict:
    """Decoding alone in worker threads vs worker processes (best of ``rounds`` each, alternated),
    the whole pipeline with processes, and on CUDA the pipeline with JPEGs decoded on the GPU; each
    pipeline rate also as a share of ``raw_img_s`` (the bare forward measured just before)."""
    import torch

    no_forward = _no_forward()

    def decode_only(pool: str):
        return lambda: encode_image_paths(no_forward, preprocess, paths, device, batch_size, None, False, pool=pool)

    encode_image_paths(no_forward, preprocess, paths[:batch_size], device, batch_size, None, False,
                       pool="processes")  # the process pool starts once per process, as in a run
    threads, processes = _best_rate(len(paths), [decode_only("threads"), decode_only("processes")], rounds)
    (pipe_processes,) = _best_rate(len(paths), [lambda: encode_image_paths(
        model, preprocess, paths, device, batch_size, None, False, pool="processes")], rounds)
    figures = {"decode_workers": default_workers(decode_ahead(device)), "decode_threads_img_s": threads,
               "decode_processes_img_s": processes, "decode_processes_vs_threads": processes / threads,
               "pipeline_processes_img_s": pipe_processes, "image_ratio_processes": pipe_processes / raw_img_s}
    if device == "cuda":
        out = {}

        def gpu_pipeline():
            route: dict = {}
            out["gpu"] = encode_image_paths(model, preprocess, paths, device, batch_size, None, False,
                                            jpeg_device="cuda", route=route)[0]
            torch.cuda.synchronize()
            out["route"] = route

        (gpu_rate,) = _best_rate(len(paths), [gpu_pipeline], rounds)
        cpu = encode_image_paths(model, preprocess, paths, device, batch_size, None, False)[0]
        figures.update({"pipeline_gpu_decode_img_s": gpu_rate, "image_ratio_gpu_decode": gpu_rate / raw_img_s,
                        "gpu_decode_route": out["route"].get("jpeg_decode"),
                        "gpu_decode_min_cosine": float((_unit(cpu) * _unit(out["gpu"])).sum(axis=1).min())})
    return figures


def measure_texts(model, tokenizer, texts: list[str], device: str, rounds: int, stock_sample: int) -> dict:
    """Truncated encoding of all ``texts`` vs stock ``encode_text`` on an evenly spread sample of them
    (stock pads every prompt to the context length, so its cost per prompt does not depend on which)."""

    sample = spread_indices(len(texts), stock_sample)
    out: dict[str, np.ndarray] = {}

    def stock():
        out["stock"] = encode_texts(model, tokenizer, [texts[i] for i in sample], device, truncate=False)[0]

    def truncated():
        out["truncated"] = encode_texts(model, tokenizer, texts, device, truncate=True)[0]

    stock_rate = _best_rate(len(sample), [stock], rounds)[0]
    trunc_rate = _best_rate(len(texts), [truncated], rounds)[0]
    diff = np.abs(_unit(out["stock"]) - _unit(out["truncated"][sample])).max()
    return {"prompts": len(texts), "stock_sample": len(sample), "text_blocker": truncation_blocker(model),
            "stock_prompts_s": stock_rate, "truncated_prompts_s": trunc_rate, "text_ratio": trunc_rate / stock_rate,
            "text_max_diff": float(diff)}


def measure_precision(model: str, precision: str, photos, n: int, batch_size: int, device: str,
                      rounds: int, seed: int = 0) -> dict:
    """The image pipeline in ``precision`` vs fp32 (same random weights) on the first ``n`` photos:
    img/s of each, and their agreement (min cosine, identical category zero-shot predictions)."""

    reduced = ClipEncoder(model, "random", device=device, seed=seed, batch_size=batch_size, progress=False,
                          precision=precision)
    encoders = [fp32_twin(reduced), reduced]
    for enc in encoders:
        enc.load()
    paths = photo_paths(photos, n)
    fp32_rate, reduced_rate = _best_rate(len(paths), [lambda e=e: e.encode_images(paths) for e in encoders], rounds)
    check = category_agreement(*encoders, photos, limit=n)
    return {"precision": precision, "fp32_img_s": fp32_rate, "reduced_img_s": reduced_rate,
            "precision_speedup": reduced_rate / fp32_rate, "precision_min_cosine": check["min_cosine"],
            "precision_identical_predictions": check["identical_predictions"]}


# The CLI in a child process that also writes its own peak RSS (KiB on Linux) to a file.
_CHILD = ("import resource, sys\n"
          "from dirti_bench.cli import main\n"
          "rc = main(sys.argv[2:])\n"
          "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
          "sys.exit(rc)\n")


def _last_line(stderr: str) -> str:
    """A failed child's last stderr line: its ``error:`` line, or the end of its traceback."""
    return (stderr.strip().splitlines() or ["(no output)"])[-1]


def _dirti_bench_run(args: list[str], env: dict, rss_file: Path) -> float:
    """Wall seconds of one ``dirti-bench run`` (imports included) in a child process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(rss_file), "run", *args, "--no-progress"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise UserError(f"'dirti-bench run {' '.join(args)}' failed during the benchmark: {_last_line(proc.stderr)}")
    return seconds


def measure_warm_rerun(run_args: list[str], scenarios_only: bool = True) -> dict:
    """Run twice in one fresh cache home; the second run must find every embedding cached. With
    ``scenarios_only``, a third, warm run without the report times the scenarios alone (process
    start and loading included)."""

    with tempfile.TemporaryDirectory(prefix="dirti-bench-warm-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp / "home"), "MPLBACKEND": "Agg"}
        # numba's compiled UMAP kernels stay in the user's cache: only embeddings start cold here
        env["NUMBA_CACHE_DIR"] = numba_cache_dir()
        cold_s = _dirti_bench_run([*run_args, "--out", str(tmp / "cold")], env, tmp / "cold.rss")
        warm_s = _dirti_bench_run([*run_args, "--out", str(tmp / "warm")], env, tmp / "warm.rss")
        scenarios = {"warm_scenarios_s": _dirti_bench_run([*run_args, "--no-report", "--out", str(tmp / "scenarios")],
                                                          env, tmp / "scenarios.rss")} if scenarios_only else {}
        run = json.loads((tmp / "warm" / "results.json").read_text())["run"]
        cold_rss_kib = int((tmp / "cold.rss").read_text())
    cache = run.get("cache") or {}
    return {"cold_run_s": cold_s, "warm_run_s": warm_s, **scenarios,
            "warm_forward_calls": int(run.get("forward_calls", -1)),
            "warm_cache_misses": int(cache.get("misses", -1)), "peak_rss_mb": cold_rss_kib / 1024}


SWEEP_SCENARIOS = ["zeroshot-baseline"]  # the evaluation a sweep timing includes: the cheapest scenario


def measure_sweep(model: str, folder: Path, n_models: int, batch_size: int, device: str, seed: int = 0,
                  rounds: int = 1) -> dict:
    """A cold ``dirti-bench run --models`` of ``n_models`` checkpoints of ``model`` (seeded random weights,
    written to files) against the sum of their bare forwards plus checkpoint loads, both here.

    The sweep runs one cheap scenario and no report, so its wall time is the pipeline's overhead around
    the models (imports, stimuli, decoding, caching, writing); scenario evaluation and reports are model
    work measured elsewhere (warm re-run). As everywhere in this tool, each side is measured ``rounds``
    times, the rounds alternating, and its best kept: a shared machine's speed swings by more than the
    overhead being measured (each sweep round is cold: a fresh cache home)."""
    import open_clip
    import torch

    register_model_configs()
    paths = photo_paths(load_dirti(folder), 10 ** 9)
    with tempfile.TemporaryDirectory(prefix="dirti-bench-sweep-") as tmp:
        tmp = Path(tmp)
        checkpoints = []
        for i in range(n_models):
            torch.manual_seed(seed + i)
            with random_weights_quietly():  # random on purpose: the checkpoints of the sweep
                net = open_clip.create_model(model)
            checkpoints.append(tmp / f"{model}-seed{seed + i}.pt")
            torch.save(net.state_dict(), checkpoints[-1])
            del net
        models_file = tmp / "models.txt"
        models_file.write_text("".join(f"{model} {c.name}\n" for c in checkpoints))
        # Two bare sides: plain open_clip (what a hand-written loop gets: the target's measure) and
        # the same loop with dirti-bench's allocator setting, so the overhead of the pipeline alone
        # is visible too (the setting makes CPU forwards faster, and the target should not hide that).
        bare: dict[bool, list[dict]] = {False: [], True: []}  # keep_memory -> each round's child result
        sweep_s, peak_rss_mb = float("inf"), 0.0
        # Rounds alternate the sides (every bare load + forward, then one cold sweep), so a machine
        # that slows down for minutes slows all; the best of each is kept. Each side runs in a fresh
        # process: the same forward ran up to 10% faster in a long-lived measuring process than in a
        # fresh one on this project's VM.
        for r in range(rounds):
            for keep, results in bare.items():
                results.append(_bare_side(model, checkpoints, folder, batch_size, device, keep))
            env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp / f"home{r}"), "MPLBACKEND": "Agg"}
            seconds = _dirti_bench_run(["--data", str(folder), "--models", str(models_file), "--scenarios",
                                        *SWEEP_SCENARIOS, "--no-report", "--device", device, "--batch-size",
                                        str(batch_size), "--out", str(tmp / f"out{r}")], env, tmp / "sweep.rss")
            sweep_s = min(sweep_s, seconds)
            peak_rss_mb = max(peak_rss_mb, int((tmp / "sweep.rss").read_text()) / 1024)
    plain, tuned = bare[False], bare[True]
    bare_s, load_s = _best_sum(plain, "forwards"), _best_sum(plain, "loads")
    tuned_s, tuned_load_s = _best_sum(tuned, "forwards"), _best_sum(tuned, "loads")
    return {"sweep_models": n_models, "sweep_images": len(paths), "sweep_s": sweep_s,
            "sweep_bare_forward_s": bare_s, "sweep_checkpoint_load_s": load_s,
            "sweep_ratio": sweep_s / (bare_s + load_s),
            "sweep_tuned_forward_s": tuned_s, "sweep_tuned_load_s": tuned_load_s,
            "sweep_overhead_ratio": sweep_s / (tuned_s + tuned_load_s),
            "sweep_plain_keeps_freed_memory": any(r["keeps_freed_memory"] for r in plain),
            "sweep_tuned_keeps_freed_memory": all(r["keeps_freed_memory"] for r in tuned),
            "sweep_peak_rss_mb": peak_rss_mb}


def _best_sum(rounds: list[dict], key: str) -> float:
    """Each checkpoint's best time over the rounds, summed."""
    return sum(min(times) for times in zip(*(r[key] for r in rounds), strict=True))


_BARE_CHILD = """
import json, sys
from dirti_bench.bench import bare_loads_and_forwards
print(json.dumps(bare_loads_and_forwards(*json.loads(sys.argv[1]))))
"""


def _bare_side(model: str, checkpoints: list[Path], folder: Path, batch_size: int, device: str,
               keep_memory: bool) -> dict:
    """``bare_loads_and_forwards`` in a fresh child process: {"loads": [s], "forwards": [s], ...}."""
    args = json.dumps([model, [str(c) for c in checkpoints], str(folder), batch_size, device, keep_memory])
    proc = subprocess.run([sys.executable, "-c", _BARE_CHILD, args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"the bare forwards of the sweep benchmark failed: {_last_line(proc.stderr)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bare_loads_and_forwards(model: str, checkpoints: list[str], folder: str, batch_size: int,
                            device: str, keep_memory: bool = False) -> dict:
    """What a bare script does for each checkpoint: open_clip's own load, then one forward over
    every photo (open_clip's preprocessing, done once, outside the timing). Imports are outside
    the timing too: a sweep pays them once.

    With ``keep_memory`` it first applies dirti-bench's allocator setting, as the sweep does (plain
    open_clip's CPU forwards are slower without it: pages faulted in again), so that comparison
    measures the pipeline's overhead alone, not that speed-up."""
    keeps_freed_memory = keep_freed_memory() if keep_memory else False  # before the first allocation
    import open_clip

    register_model_configs()
    paths = photo_paths(load_dirti(Path(folder)), 10 ** 9)
    tensors, loads, forwards = None, [], []
    for checkpoint in checkpoints:
        start = time.perf_counter()
        net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=checkpoint, device=device)
        net.eval()
        loads.append(time.perf_counter() - start)
        if tensors is None:
            tensors = _preprocessed(preprocess, paths)
        forwards.append(_bare_forward(net, tensors, batch_size, device))
        del net
    return {"loads": loads, "forwards": forwards, "keeps_freed_memory": keeps_freed_memory}


def _bare_forward(net, tensors, batch_size: int, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    with torch.inference_mode():
        start = time.perf_counter()
        for j in range(0, len(tensors), batch_size):
            net.encode_image(tensors[j:j + batch_size].to(device)).float().cpu()
        return time.perf_counter() - start


def _preprocessed(preprocess, paths: list[Path]):
    """open_clip's own preprocessing of every photo, stacked: the bare forward's input."""
    import torch
    from PIL import Image

    tensors = []
    for p in paths:
        with Image.open(p) as im:
            tensors.append(preprocess(im))
    return torch.stack(tensors)


SUMMARY_MARK = "results: "  # the summary's first output path: the table is printed just before it


def _timed_run(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds until the summary table is printed, seconds until the process ends) of one
    ``dirti-bench run`` in a child process; its stdout is read line by line as it comes."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dirti_bench.cli", "run", *args, "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    summary_s = None
    for line in proc.stdout:
        if summary_s is None and line.startswith("scenario "):  # the table's header row
            summary_s = time.perf_counter() - start
    stderr = proc.stderr.read()
    code = proc.wait()
    total_s = time.perf_counter() - start
    if code != 0:
        raise UserError(f"'dirti-bench run {' '.join(args)}' failed during the first-run check: {_last_line(stderr)}")
    return summary_s if summary_s is not None else total_s, total_s


def measure_first_run(extra_args: list[str] = ()) -> dict:
    """A newcomer's first ``dirti-bench run --demo`` with every cache empty, then again warm."""
    with tempfile.TemporaryDirectory(prefix="dirti-bench-first-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp / "home"), "NUMBA_CACHE_DIR": str(tmp / "numba"),
               "MPLCONFIGDIR": str(tmp / "matplotlib"), "MPLBACKEND": "Agg"}
        args = ["--demo", "--out", str(tmp / "out"), *extra_args]
        cold_summary_s, cold_total_s = _timed_run(args, env)
        warm_summary_s, warm_total_s = _timed_run(args, env)
    return {"first_run_summary_s": cold_summary_s, "first_run_total_s": cold_total_s,
            "demo_warm_summary_s": warm_summary_s, "demo_warm_run_s": warm_total_s}


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda s: None) -> dict:
    import torch


    if not known_model(cfg.model):
        raise UserError(f"unknown model {cfg.model!r}; pick one of open_clip.list_models() (e.g. ViT-B-32)")
    if cfg.precision is not None:

        check_precision(cfg.precision, resolve_device(cfg.device))
    if min(cfg.batch_size, cfg.rounds, cfg.text_sample) < 1:
        raise UserError(f"batch size ({cfg.batch_size}), rounds ({cfg.rounds}) and text sample "
                        f"({cfg.text_sample}) must each be at least 1", ("batch_size", "rounds", "text_sample"))
    photo_split(cfg.images)  # fails early on too few images
    device = resolve_device(cfg.device)
    progress(f"generating {cfg.images} photos of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} (once; kept in the cache)")
    folder = bench_photos(cfg.images, cfg.seed)
    photos = load_dirti(folder)
    paths = photo_paths(photos, cfg.images)
    model, preprocess, tokenizer = load_model(cfg.model, device, cfg.seed)
    figures = {"model": cfg.model, "device": device, "device_name": describe_device(device),
               "torch_threads": torch.get_num_threads()}
    progress("images: bare forward vs pipeline")
    figures.update(measure_images(model, preprocess, paths, cfg.batch_size, device, cfg.rounds))
    progress("decode: worker threads vs processes" + (", JPEGs on the GPU vs the CPU" if device == "cuda" else ""))
    figures.update(measure_decode(model, preprocess, paths, cfg.batch_size, device, cfg.rounds, figures["raw_img_s"]))
    if cfg.precision not in (None, "fp32"):
        progress(f"precision: {cfg.precision} vs fp32")
        figures.update(measure_precision(cfg.model, cfg.precision, photos, cfg.images, cfg.batch_size, device,
                                         cfg.rounds, cfg.seed))
    progress("texts: stock vs truncated")
    figures.update(measure_texts(model, tokenizer, prompt_ensemble(), device, cfg.rounds, cfg.text_sample))
    del model
    if cfg.sweep:
        progress(f"sweep: {cfg.sweep} checkpoints of {cfg.model}, cold, vs their bare forwards + loads")
        figures.update(measure_sweep(cfg.model, folder, cfg.sweep, cfg.batch_size, device, cfg.seed, cfg.rounds))
    if cfg.warm:
        progress("warm re-run: dirti-bench run, cold then warm")
        figures.update(measure_warm_rerun(["--data", str(folder), "--model", cfg.model, "--pretrained", "random",
                                           "--seed", str(cfg.seed), "--device", device,
                                           "--batch-size", str(cfg.batch_size)]))
    if cfg.first_run:
        progress("first run: dirti-bench run --demo with every cache empty, then again")
        figures.update(measure_first_run())
    return figures


# ---------------------------------------------------------------- output

ROWS = [  # key, label, format
    ("raw_img_s", "raw forward (img/s)", "{:.2f}"),
    ("pipeline_img_s", "pipeline (img/s)", "{:.2f}"),
    ("image_ratio", "pipeline / raw (target >= 0.95; {image_ratio_method})", "{:.3f}"),
    ("image_ratio_whole_runs", "pipeline / raw, whole runs (best of --rounds each)", "{:.3f}"),
    ("decode_threads_img_s", "decoding alone, {decode_workers} worker threads (img/s)", "{:.1f}"),
    ("decode_processes_img_s", "decoding alone, {decode_workers} worker processes (img/s)", "{:.1f}"),
    ("decode_processes_vs_threads", "decoding alone: processes / threads", "{:.3f}"),
    ("pipeline_processes_img_s", "pipeline, decoding in worker processes (img/s)", "{:.2f}"),
    ("image_ratio_processes", "pipeline with worker processes / raw (whole runs)", "{:.3f}"),
    ("pipeline_gpu_decode_img_s", "pipeline, JPEGs decoded on the GPU (img/s)", "{:.2f}"),
    ("image_ratio_gpu_decode", "pipeline with GPU decoding / raw (target >= 0.8; off: the rows above)", "{:.3f}"),
    ("gpu_decode_min_cosine", "min cosine, GPU decode vs CPU decode (>= 0.999)", "{:.5f}"),
    ("hand_written_ratio", "hand-written open_clip loop / raw (pipeline must beat it)", "{:.3f}"),
    ("decode_min_cosine", "min cosine, decode path vs open_clip preprocess (>= 0.999)", "{:.5f}"),
    ("reduced_img_s", "pipeline in --precision (img/s)", "{:.2f}"),
    ("precision_speedup", "--precision / fp32 pipeline", "{:.2f}"),
    ("precision_min_cosine", "--precision: min cosine to fp32", "{:.5f}"),
    ("precision_identical_predictions", "--precision: identical category predictions (share)", "{:.3f}"),
    ("stock_prompts_s", "stock encode_text (prompts/s, on the sample)", "{:.1f}"),
    ("truncated_prompts_s", "truncated (prompts/s, all prompts)", "{:.1f}"),
    ("text_ratio", "truncated / stock (target >= 5)", "{:.2f}"),
    ("text_max_diff", "max abs diff after normalisation (<= 1e-4)", "{:.2e}"),
    ("sweep_s", "cold sweep of --sweep checkpoints, one scenario, no report (s)", "{:.1f}"),
    ("sweep_bare_forward_s", "  their bare open_clip forwards (s)", "{:.1f}"),
    ("sweep_checkpoint_load_s", "  their open_clip checkpoint loads (s)", "{:.1f}"),
    ("sweep_ratio", "sweep / (bare forwards + loads) (target <= 1.10)", "{:.3f}"),
    ("sweep_tuned_forward_s", "  bare forwards with dirti-bench's allocator setting (s)", "{:.1f}"),
    ("sweep_tuned_load_s", "  their checkpoint loads (s)", "{:.1f}"),
    ("sweep_overhead_ratio", "sweep / (same-allocator forwards + loads): the pipeline's overhead", "{:.3f}"),
    ("sweep_peak_rss_mb", "peak RSS of the sweep (MB)", "{:.0f}"),
    ("warm_run_s", "warm re-run incl. report (s, target <= 15)", "{:.1f}"),
    ("warm_scenarios_s", "warm re-run of every scenario, no report (s, target <= 10)", "{:.1f}"),
    ("warm_forward_calls", "warm re-run model forwards (target 0)", "{}"),
    ("cold_run_s", "cold run (s)", "{:.1f}"),
    ("peak_rss_mb", "peak RSS of the cold run (MB, target <= 3072)", "{:.0f}"),
    ("first_run_summary_s", "first 'run --demo', caches empty: summary printed (s, target <= 15)", "{:.1f}"),
    ("first_run_total_s", "first 'run --demo', caches empty: whole run incl. report (s, target <= 30)", "{:.1f}"),
    ("demo_warm_run_s", "'run --demo' again, warm (s, target <= 10)", "{:.1f}"),
]


def format_table(figures: dict) -> str:
    from tabulate import tabulate

    # timings compare only on the same hardware: the header names it
    head = (f"{figures['model']} on {figures['device']} ({figures.get('device_name')}), {figures.get('images')} images of "
            f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, batch {figures.get('batch_size')}, decode {figures.get('decode')}, "
            f"{figures.get('prompts')} prompts (stock timed on {figures.get('stock_sample')}), torch threads {figures['torch_threads']}"
            + (f", --precision {figures['precision']}" if "precision" in figures else ""))
    rows = [(label.format(**figures), fmt.format(figures[key])) for key, label, fmt in ROWS if key in figures]
    return head + "\n" + tabulate(rows, headers=["measure", "value"], tablefmt="github")
