"""Many models, one table: the models file, shards, a sweep's results, its leaderboard and the
comparison report (numbers proved with the known-answer encoder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

from dirti_bench.cli import main
from dirti_bench.data.dirti import load_dirti
from dirti_bench.encoding.imaging import DecodedImages
from dirti_bench.encoding.model_list import (
    ModelSpec,
    check_model,
    parse_models_file,
    parse_shard,
    select_shard,
    shard_from_env,
    with_slugs,
)
from dirti_bench.encoding.models import ClipEncoder, register_model_configs
from dirti_bench.errors import UserError
from dirti_bench.labels import build_label_space
from dirti_bench.pipeline import RunConfig, run
from dirti_bench.prompts import study_prompts
from dirti_bench.reporting.leaderboard import LEADERBOARD_COLUMNS, leaderboard_frame
from dirti_bench.reporting.runs_report import find_run_dirs, paired_rho_difference, write_comparison
from dirti_bench.results import read_results
from dirti_bench.scenarios import REGISTRY
from known_answer import oracle

REPO = Path(__file__).resolve().parents[1]
FAST = ["zeroshot-baseline", "zeroshot-disgust", "align-disgust-zeroshot"]


def checkpoint(path: Path, seed: int, model: str = "dirti-tiny") -> Path:
    """A real open_clip checkpoint file of seeded random weights: two seeds, two different models."""
    import open_clip

    register_model_configs()
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(model).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Two seeded checkpoints, a broken one, and models files naming them."""
    root = tmp_path_factory.mktemp("models")
    checkpoint(root / "seed1.pt", 1)
    checkpoint(root / "seed2.pt", 2)
    (root / "broken.pt").write_bytes(b"not a checkpoint at all")
    (root / "three.txt").write_text("# two checkpoints and random weights\n\n"
                                    "dirti-tiny seed1.pt\ndirti-tiny seed2.pt   # seed 2\ndirti-tiny random\n")
    (root / "four.txt").write_text((root / "three.txt").read_text() + "dirti-tiny broken.pt\n")
    return root


def sweep(capsys, models: Path, out: Path, *args) -> tuple[int, str, str]:
    code = main(["run", "--demo", "--no-progress", "--models", str(models), "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- the models file


def test_models_file_format(tmp_path):
    (tmp_path / "ckpt dir").mkdir()
    checkpoint(tmp_path / "ckpt dir" / "a.pt", 0)
    path = tmp_path / "models.txt"
    path.write_text('# a comment\n\nViT-B-32 openai\n  dirti-tiny  "ckpt dir/a.pt"  # trailing comment\n'
                    "ViT-B-16-SigLIP hf-hub:timm/ViT-B-16-SigLIP\n")
    specs = parse_models_file(path)
    assert [(s.model, s.pretrained) for s in specs] == [
        ("ViT-B-32", "openai"), ("dirti-tiny", str(tmp_path / "ckpt dir" / "a.pt")),
        ("ViT-B-16-SigLIP", "hf-hub:timm/ViT-B-16-SigLIP")]
    assert [s.source for s in specs] == [f"{path}:3", f"{path}:4", f"{path}:5"]
    assert [s.slug for s in specs] == ["ViT-B-32__openai", "dirti-tiny__a.pt", "ViT-B-16-SigLIP__timm-ViT-B-16-SigLIP"]


@pytest.mark.parametrize(("text", "message"), [
    ("ViT-B-32\n", r"models.txt:1: expected 'MODEL PRETRAINED', got 'ViT-B-32'"),
    ("ViT-B-32 openai extra\n", "models.txt:1: expected 'MODEL PRETRAINED'"),
    ('ViT-B-32 "open\n', "models.txt:1: No closing quotation"),
    ("ViT-B-32 openai\nViT-B-32 openai\n", "models.txt:2: ViT-B-32 openai is already listed on line 1"),
    ("# nothing\n\n", "lists no model"),
])
def test_malformed_models_files_are_one_error(tmp_path, text, message):
    path = tmp_path / "models.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        parse_models_file(path)


def test_missing_models_file_says_how_to_start_one(tmp_path):
    with pytest.raises(UserError, match="not found.*dirti-bench models > models.txt"):
        parse_models_file(tmp_path / "nope.txt")


def test_check_model_finds_what_cannot_run_without_loading(tmp_path):
    assert check_model(ModelSpec("ViT-B-32-quickgelu", "openai", "f:1")) is None
    # the QuickGELU mismatch, found before the first image is encoded: OpenAI's QuickGELU weights in a GELU ViT
    assert check_model(ModelSpec("ViT-B-32", "openai", "f:1")) == (
        "f:1: ViT-B-32 openai: it was trained with QuickGELU (open_clip's pretrained config of tag 'openai') but "
        "ViT-B-32 uses GELU; pass --model ViT-B-32-quickgelu")
    assert check_model(ModelSpec("dirti-tiny", "random", "f:2")) is None
    assert "f:3: unknown model 'ViT-Nope'" in check_model(ModelSpec("ViT-Nope", "openai", "f:3"))
    assert "open_clip has no 'no-such-tag' weights for ViT-B-32" in check_model(ModelSpec("ViT-B-32", "no-such-tag", "f:4"))
    assert "checkpoint file" in check_model(ModelSpec("ViT-B-32", str(tmp_path / "gone.pt"), "f:5"))


def test_slugs_are_unique_even_for_checkpoints_sharing_a_file_name(tmp_path):
    specs = with_slugs([ModelSpec("m", str(tmp_path / "a" / "ckpt.pt")), ModelSpec("m", str(tmp_path / "b" / "ckpt.pt")),
                        ModelSpec("m", "openai")])
    assert len({s.slug for s in specs}) == 3 and specs[2].slug == "m__openai"
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", s.slug) for s in specs)


# ---------------------------------------------------------------- shards


def test_shards_are_disjoint_and_cover_the_list():
    specs = [ModelSpec("m", f"t{i}", slug=f"m__t{i}") for i in range(7)]
    parts = [select_shard(specs, (i, 3)) for i in (1, 2, 3)]
    assert sorted(s.slug for part in parts for s in part) == sorted(s.slug for s in specs)
    assert not set(map(id, parts[0])) & set(map(id, parts[1]))
    assert select_shard(specs, None) == specs


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shards_are_refused(text):
    with pytest.raises(UserError, match="shard .* must be I/N") as exc:
        parse_shard(text)
    assert exc.value.option == "shard"


def test_slurm_array_sets_the_shard():
    assert parse_shard("2/4") == (2, 4)
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}) == (2, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}) == (1, 4)
    with pytest.raises(UserError, match="outside 4 tasks"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"})


def test_dirti_bench_models_prints_the_models_file_format(capsys, tmp_path):
    assert main(["models", "ViT-B-32", "openai"]) == 0  # only the QuickGELU twin fits OpenAI's weights
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [["ViT-B-32-quickgelu", "openai"]]
    assert main(["models", "ViT-B-32", "laion2b"]) == 0
    out = capsys.readouterr().out
    assert out.strip() and all("ViT-B-32" in line and "laion2b" in line.lower() for line in out.splitlines())
    path = tmp_path / "models.txt"
    path.write_text(out)
    specs = parse_models_file(path)
    assert all(check_model(s) is None for s in specs)


# ---------------------------------------------------------------- a sweep end to end


@pytest.fixture(scope="module")
def three_plus_broken(models_dir, tmp_path_factory):
    """``run --demo --models`` of three working models and a broken checkpoint, every scenario."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    with pytest.MonkeyPatch.context() as patch:  # module scope: its own cache home, not the user's
        patch.setenv("DIRTI_BENCH_HOME", str(out.parent / "home"))
        code = main(["run", "--demo", "--no-progress", "--no-report", "--models", str(models_dir / "four.txt"),
                     "--out", str(out)])
    return code, out


def test_a_sweep_runs_every_working_model_and_names_the_broken_one(three_plus_broken, models_dir):
    code, out = three_plus_broken
    assert code == 2
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["dirti-tiny__random", "dirti-tiny__seed1.pt", "dirti-tiny__seed2.pt"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert board.groupby("pretrained")["scenario"].nunique().tolist() == [len(REGISTRY)] * 3
    assert board["value"].dtype == float and board["ci_low"].dtype == float
    for folder in (out / "runs").iterdir():  # each a complete results directory of today's contract
        doc = read_results(folder)
        assert set(doc["scenarios"]) == set(REGISTRY)
        assert {"model", "pretrained", "weights_sha256", "dataset_sha256", "versions"} <= set(doc["run"])
        preds = pd.read_csv(folder / "predictions.csv.gz", dtype={"stimulus": str}, keep_default_na=False)
        from sklearn.metrics import accuracy_score

        for sid, sc in doc["scenarios"].items():
            if sc["task"] != "alignment":
                rows = preds[preds["scenario"] == sid]
                assert sc["metrics"]["accuracy"] == pytest.approx(accuracy_score(rows["y_true"], rows["y_pred"]))
        mine = board[board["weights_sha256"] == doc["run"]["weights_sha256"]]
        for sid, sc in doc["scenarios"].items():
            got = mine[mine["scenario"] == sid].set_index("metric")["value"]
            assert got.to_dict() == pytest.approx({k: v for k, v in sc["metrics"].items() if v is not None})
    shas = board.groupby("pretrained")["weights_sha256"].first()
    assert shas.nunique() == 3  # two seeds are two different models


def test_the_broken_model_is_one_error_line(models_dir, tmp_path, capsys):
    code, out, err = sweep(capsys, models_dir / "four.txt", tmp_path / "out", "--scenarios", "zeroshot-baseline",
                           "--no-report")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "broken.pt" in errors[0] and "four.txt:6" in errors[0]
    assert "4 models: 3 run, 0 skipped, 1 failed" in out
    row = next(line for line in out.splitlines() if "broken.pt" in line)
    assert "| failed" in row and "dirti-tiny" in row
    # the sweep ends with its leaderboard: one row per finished model, its headline measure and flags
    lines = out.splitlines()
    start = lines.index("leaderboard (headline measures; every metric with its flags in leaderboard.csv):")
    assert "| model " in lines[start + 1] and "zeroshot-baseline (acc.)" in lines[start + 1]
    board = [line for line in lines[start + 3:] if line.startswith("| dirti-tiny")]
    assert len(board) == 3
    for folder in sorted((tmp_path / "out" / "runs").iterdir()):
        sc = read_results(folder)["scenarios"]["zeroshot-baseline"]
        flags = [f["flag"] for f in sc["flags"]]
        cell = f"{sc['metrics']['accuracy']:.3f}" + (f" ({'; '.join(flags)})" if flags else "")
        assert any(cell in line for line in board), (cell, board)


def test_lines_that_cannot_run_are_reported_before_any_image_is_encoded(models_dir, tmp_path, capsys, monkeypatch):
    path = tmp_path / "models.txt"
    path.write_text(f"dirti-tiny {models_dir / 'seed1.pt'}\nViT-Nope openai\ndirti-tiny {tmp_path / 'gone.pt'}\n")
    encoded = []
    original = ClipEncoder.encode_images
    monkeypatch.setattr(ClipEncoder, "encode_images", lambda self, paths: encoded.append(1) or original(self, paths))
    code, _, err = sweep(capsys, path, tmp_path / "out", "--scenarios", "zeroshot-baseline", "--no-report")
    lines = [line for line in err.splitlines() if line.startswith(("error:", "model "))]
    first_model = next(i for i, line in enumerate(lines) if line.startswith("model 1/3"))
    assert code == 2 and len(encoded) == 1
    assert [i for i, line in enumerate(lines) if line.startswith("error:")] == [0, 1] and first_model == 2
    assert "unknown model 'ViT-Nope'" in lines[0] and "gone.pt" in lines[1]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_each_model_is_released_before_the_next_loads(models_dir, tmp_path, capsys, monkeypatch):
    alive_at_load = []
    built = []
    original = ClipEncoder.load

    def load(self):
        fresh = self._model is None
        model = original(self)
        if fresh:
            alive_at_load.append(sum(ref() is not None for ref in built))
            built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(ClipEncoder, "load", load)
    code, _, _ = sweep(capsys, models_dir / "three.txt", tmp_path / "out", "--scenarios", "zeroshot-baseline",
                       "--no-report")
    assert code == 0 and alive_at_load == [0, 0, 0]  # no earlier model alive when the next is built
    assert all(ref() is None for ref in built[:-1])


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_models_of_one_preprocessing_share_their_decodes(models_dir, demo_master, monkeypatch):
    """The second model decodes nothing, and reused crops give the same embeddings as decoding."""
    decoded = DecodedImages()
    paths = [s.path for s in load_dirti(demo_master).stimuli]
    first = ClipEncoder("dirti-tiny", str(models_dir / "seed1.pt"), device="cpu", progress=False, decoded=decoded)
    second = ClipEncoder("dirti-tiny", str(models_dir / "seed2.pt"), device="cpu", progress=False, decoded=decoded)
    first.encode_images(paths)
    assert decoded.decoded == len(paths) and decoded.reused == 0
    shared = second.encode_images(paths)
    assert decoded.decoded == len(paths) and decoded.reused == len(paths)
    alone = ClipEncoder("dirti-tiny", str(models_dir / "seed2.pt"), device="cpu", progress=False).encode_images(paths)
    np.testing.assert_array_equal(shared, alone)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_each_checkpoint_is_hashed_once_ahead_and_recorded(models_dir, tmp_path, capsys, monkeypatch):
    """The sweep hashes checkpoint files on a background thread; the encoder does not read them again,
    and each run records the file's true sha256."""
    import hashlib

    import dirti_bench.encoding.models as models_module
    import dirti_bench.sweep as sweep_module

    hashed = []
    original = sweep_module.file_sha256
    monkeypatch.setattr(sweep_module, "file_sha256", lambda path: hashed.append(Path(path).name) or original(path))
    monkeypatch.setattr(models_module, "file_sha256", lambda path: pytest.fail(f"{path} hashed again"))
    code, _, _ = sweep(capsys, models_dir / "three.txt", tmp_path / "out", "--scenarios", "zeroshot-baseline",
                       "--no-report")
    assert code == 0 and sorted(hashed) == ["seed1.pt", "seed2.pt"]  # 'random' has no file to hash
    for name in ("seed1.pt", "seed2.pt"):
        run = read_results(tmp_path / "out" / "runs" / f"dirti-tiny__{name}")["run"]
        assert run["weights_sha256"] == hashlib.sha256((models_dir / name).read_bytes()).hexdigest()


def test_an_unreadable_checkpoint_hash_falls_back_to_the_encoder(models_dir, monkeypatch):
    import dirti_bench.sweep as sweep_module

    def unreadable(path):
        if Path(path).name == "seed2.pt":
            raise PermissionError(f"cannot read {path}")
        return sweep_module.file_sha256.__wrapped__(path)

    unreadable.__wrapped__ = sweep_module.file_sha256
    monkeypatch.setattr(sweep_module, "file_sha256", unreadable)
    good, bad = (ModelSpec("dirti-tiny", str(models_dir / name)) for name in ("seed1.pt", "seed2.pt"))
    random = ModelSpec("dirti-tiny", "random")
    hashes = sweep_module.CheckpointHashes([good, bad, random])
    try:
        assert hashes.get(bad) is None and hashes.get(random) is None  # the encoder hashes (and reports) itself
        assert hashes.get(good) == ClipEncoder("dirti-tiny", str(models_dir / "seed1.pt")).weights_file_sha256()
    finally:
        hashes.close()


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_skip_existing_does_no_model_forward_on_a_complete_rerun(models_dir, tmp_path, capsys, monkeypatch):
    args = ("--scenarios", "zeroshot-baseline", "--no-report")
    assert sweep(capsys, models_dir / "three.txt", tmp_path / "out", *args)[0] == 0
    before = {p.name: (p / "results.json").read_bytes() for p in (tmp_path / "out" / "runs").iterdir()}
    monkeypatch.setattr(ClipEncoder, "load", lambda self: pytest.fail("a model was loaded"))
    code, out, err = sweep(capsys, models_dir / "three.txt", tmp_path / "out", *args, "--skip-existing")
    assert code == 0 and "0 run, 3 skipped" in out and err.count("skipped (--skip-existing)") == 3
    assert before == {p.name: (p / "results.json").read_bytes() for p in (tmp_path / "out" / "runs").iterdir()}


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_skip_existing_reruns_what_changed(models_dir, tmp_path, capsys):
    assert sweep(capsys, models_dir / "three.txt", tmp_path / "out", "--scenarios", "zeroshot-baseline",
                 "--no-report")[0] == 0
    code, out, _ = sweep(capsys, models_dir / "three.txt", tmp_path / "out", "--scenarios", "zeroshot-disgust",
                         "--no-report", "--skip-existing")  # other scenarios: not complete
    assert code == 0 and "3 run, 0 skipped" in out


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_shards_merged_give_the_unsharded_leaderboard(models_dir, tmp_path, capsys):
    args = ("--scenarios", *FAST, "--no-report")
    assert sweep(capsys, models_dir / "three.txt", tmp_path / "whole", *args)[0] == 0
    for shard in ("1/2", "2/2"):
        code, out, _ = sweep(capsys, models_dir / "three.txt", tmp_path / "sharded", *args, "--shard", shard)
        assert code == 0 and f"shard {shard}" in out and "dirti-bench report" in out
    assert not (tmp_path / "sharded" / "leaderboard.csv").exists()  # shards leave merging to report
    assert main(["report", str(tmp_path / "sharded")]) == 0
    key = ["pretrained", "scenario", "metric"]
    whole = pd.read_csv(tmp_path / "whole" / "leaderboard.csv")
    merged = pd.read_csv(tmp_path / "sharded" / "leaderboard.csv")
    whole["pretrained"] = whole["pretrained"].map(lambda p: Path(p).name)
    merged["pretrained"] = merged["pretrained"].map(lambda p: Path(p).name)
    pd.testing.assert_frame_equal(whole.sort_values(key).reset_index(drop=True),
                                  merged.sort_values(key).reset_index(drop=True))


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_two_shards_at_once_on_one_cache_home(models_dir, tmp_path):
    """Two processes, one DIRTI_BENCH_HOME: the cache's atomic writes keep both runs whole."""
    env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp_path / "shared-home")}
    cmd = [sys.executable, "-m", "dirti_bench.cli", "run", "--demo", "--no-progress", "--no-report",
           "--models", str(models_dir / "three.txt"), "--out", str(tmp_path / "out"), "--scenarios", *FAST]
    procs = [subprocess.Popen([*cmd, "--shard", shard], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for shard in ("1/2", "2/2")]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    assert main(["report", str(tmp_path / "out")]) == 0
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert board["pretrained"].nunique() == 3 and board["value"].notna().all()


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "dirti-tiny"], "either --models FILE or --model/--pretrained"),
    (["--shard", "3/2"], "shard '3/2' must be I/N with 1 <= I <= N, e.g. 2/4 (command-line option --shard)"),
])
def test_sweep_option_errors(models_dir, tmp_path, capsys, args, message):
    code, _, err = sweep(capsys, models_dir / "three.txt", tmp_path / "out", *args)
    assert code == 2 and err.strip().startswith("error:") and message in err and "\n" not in err.strip()


def test_sweep_flags_without_models_are_refused(capsys):
    assert main(["run", "--demo", "--skip-existing"]) == 2
    assert "--skip-existing applies to a sweep" in capsys.readouterr().err


# ---------------------------------------------------------------- the comparison, with known answers


@pytest.fixture(scope="module")
def oracle_and_inverted(demo_master, tmp_path_factory):
    """Two runs of constructed encoders on the demo set: zero-shot categories right (oracle) and
    with the label mapping inverted, so accuracy is 1 and 0 and every stimulus is discordant."""
    stimuli = load_dirti(demo_master)
    space = build_label_space(stimuli, "category")
    prompts = study_prompts(space)
    root = tmp_path_factory.mktemp("known")
    dirs = []
    for name, invert in (("oracle", False), ("inverted", True)):
        encoder = oracle(stimuli, space, prompts, invert=invert)
        encoder.name = name
        category_vector = encoder.text_vector
        # Alignment prompts are not category prompts: any fixed vector serves (the same for both runs).
        encoder.text_vector = lambda t, known=category_vector: (
            known(t) if t.startswith("This is a photo of") else np.eye(6, dtype=np.float32)[int("disgusting" in t)])
        dirs.append(run(RunConfig(data=demo_master, out=root / name, report=False,
                                  scenarios=["zeroshot-baseline", "align-disgust-zeroshot"]), encoder=encoder))
    return root, dirs


def test_comparison_pairs_runs_with_exact_known_differences(oracle_and_inverted):
    root, dirs = oracle_and_inverted
    report = write_comparison(dirs, root / "cmp")
    text = report.read_text()
    assert "oracle · constructed (reference)" in text
    row = next(line for line in text.splitlines() if line.startswith("| zeroshot-baseline") and "Δ accuracy" in line)
    p = binomtest(0, 60, 0.5).pvalue
    assert "-1.000 [-1.000, -1.000]" in row and f"McNemar p={p:.3g}, Holm p=" in row and "macro-F1 -" in row
    accuracy = next(line for line in text.split("### Accuracy")[1].splitlines() if "zeroshot-baseline" in line)
    assert "1.000 [1.000, 1.000] (zero width) ★" in accuracy and "0.000 [0.000, 0.000] (zero width) (below-chance)" in accuracy
    board = pd.read_csv(root / "cmp" / "leaderboard.csv")
    acc = board[(board["scenario"] == "zeroshot-baseline") & (board["metric"] == "accuracy")]
    assert sorted(acc["value"]) == [0.0, 1.0] and set(acc["model"]) == {"oracle", "inverted"}


def test_reference_can_be_chosen(oracle_and_inverted):
    root, dirs = oracle_and_inverted
    text = write_comparison(dirs, root / "cmp-ref", reference="inverted").read_text()
    assert "(reference)" in text and "inverted · constructed (reference)" in text
    assert "+1.000 [1.000, 1.000]" in text
    with pytest.raises(UserError, match="reference 'nobody' names 0 of the runs"):
        write_comparison(dirs, root / "x", reference="nobody")


def test_paired_rho_difference_is_exact_and_its_ci_brackets_it():
    rng = np.random.default_rng(0)
    rating = rng.uniform(1, 9, 80)
    good, noisy = rating + rng.normal(0, 0.1, 80), rating + rng.normal(0, 3, 80)
    from scipy.stats import spearmanr

    estimate, (low, high) = paired_rho_difference(rating, good, noisy, seed=0)
    assert estimate == pytest.approx(spearmanr(rating, good).statistic - spearmanr(rating, noisy).statistic)
    assert low < estimate < high and low > 0
    assert paired_rho_difference(rating, good, good, seed=0) == (0.0, [0.0, 0.0])


def test_runs_on_another_dataset_are_never_paired(oracle_and_inverted, tmp_path):
    root, dirs = oracle_and_inverted
    other = tmp_path / "other"
    other.mkdir()
    doc = json.loads((dirs[1] / "results.json").read_text())
    doc["run"]["dataset"], doc["run"]["dataset_sha256"] = "another-set", "f" * 64
    (other / "results.json").write_text(json.dumps(doc))
    (other / "predictions.csv.gz").write_bytes((dirs[1] / "predictions.csv.gz").read_bytes())
    text = write_comparison([dirs[0], other], tmp_path / "cmp").read_text()
    assert "DIFFERENT DATASETS" in text and "another-set" in text
    deltas = text.split("## Difference to the reference")[1].split("##")[0]
    assert "not paired: another dataset (reference vs this run:" in deltas and "vs another-set)" in deltas and "McNemar" not in deltas.split("|", 3)[-1]


def test_runs_on_another_label_space_are_never_paired(oracle_and_inverted, tmp_path):
    root, dirs = oracle_and_inverted
    other = tmp_path / "other"
    other.mkdir()
    doc = json.loads((dirs[1] / "results.json").read_text())
    labels = doc["scenarios"]["zeroshot-baseline"]["labels"]
    renamed = labels[-1] + " (other space)"  # consistently, so the run passes the read-back check
    doc["scenarios"]["zeroshot-baseline"]["labels"] = [*labels[:-1], renamed]
    (other / "results.json").write_text(json.dumps(doc))
    preds = pd.read_csv(dirs[1] / "predictions.csv.gz", dtype=str, keep_default_na=False)
    rows = preds["scenario"] == "zeroshot-baseline"
    for column in ("y_true", "y_pred"):
        preds.loc[rows & (preds[column] == labels[-1]), column] = renamed
    preds.to_csv(other / "predictions.csv.gz", index=False)
    text = write_comparison([dirs[0], other], tmp_path / "cmp").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| zeroshot-baseline") and "Δ" in line)
    assert "not paired: another label space" in row


def test_a_ten_run_report_stays_small(oracle_and_inverted, tmp_path):
    root, dirs = oracle_and_inverted
    runs = []
    for i in range(10):
        folder = tmp_path / "runs" / f"model-{i}"
        folder.mkdir(parents=True)
        doc = json.loads((dirs[i % 2] / "results.json").read_text())
        doc["run"]["model"] = f"model-{i}"
        (folder / "results.json").write_text(json.dumps(doc))
        (folder / "predictions.csv.gz").write_bytes((dirs[i % 2] / "predictions.csv.gz").read_bytes())
        runs.append(folder)
    assert find_run_dirs([tmp_path]) == runs
    write_comparison([tmp_path], tmp_path)
    assert (tmp_path / "report.html").stat().st_size < 2_000_000
    assert len(list((tmp_path / "figures").glob("*.png"))) <= 30


def test_report_of_several_dirs_needs_an_out(oracle_and_inverted, capsys):
    _, dirs = oracle_and_inverted
    assert main(["report", *map(str, dirs)]) == 2
    assert "pass --out DIR" in capsys.readouterr().err


def test_leaderboard_frame_is_tidy():
    doc = {"run": {"model": "m", "pretrained": "p", "weights_sha256": None},
           "scenarios": {"s": {"task": "category", "metrics": {"accuracy": 0.5, "n_folds": 3, "note": "x",
                                                                "undefined": None},
                               "ci": {"accuracy": [0.4, 0.6]}}}}
    frame = leaderboard_frame([doc])
    assert frame["metric"].tolist() == ["accuracy", "n_folds", "undefined"]  # strings are not metrics
    assert frame.loc[0, ["value", "ci_low", "ci_high"]].tolist() == [0.5, 0.4, 0.6]
    assert np.isnan(frame.loc[1, "ci_low"]) and np.isnan(frame.loc[2, "value"])
    assert frame["weights_sha256"].tolist() == ["", "", ""]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_pytest_benchmarks_run_every_case_per_model(models_dir, tmp_path):
    models = tmp_path / "models.txt"
    models.write_text(f"dirti-tiny {models_dir / 'seed1.pt'}\ndirti-tiny random\ndirti-tiny {models_dir / 'broken.pt'}\n")
    env = {**os.environ, "DIRTI_BENCH_MODELS": str(models), "DIRTI_BENCH_DEVICE": "cpu",
           "DIRTI_BENCH_RESULTS_DIR": str(tmp_path / "results")}
    collect = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-k", "disgust"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    ids = re.findall(r"test_scenario\[(.+?)\]", collect.stdout)
    expected = [f"dirti-tiny-{w}-{sid}" for w in ("seed1.pt", "random", "broken.pt")
                for sid in REGISTRY if "disgust" in sid]
    assert ids == expected, collect.stdout[-2000:]
    session = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                              "benchmarks/test_scenarios.py", "-k", "test_scenario and zeroshot-baseline"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert session.returncode == 1, session.stdout[-2000:]  # the broken model's case fails; the others pass
    assert "2 passed" in session.stdout and "broken.pt" in session.stdout
    assert sorted(p.name for p in (tmp_path / "results" / "runs").iterdir()) == [
        "dirti-tiny__random", "dirti-tiny__seed1.pt"]
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert set(board["scenario"]) == {"zeroshot-baseline"} and board["pretrained"].nunique() == 2

