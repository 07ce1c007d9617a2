"""The command line, end to end and in-process, and its sync with registry and configs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pixelrnn.cli import build_parser, main, model_config_classes
from pixelrnn.models import PRESETS
from pixelrnn.training import TrainConfig

TINY_RUN = [
    "--preset",
    "pixelcnn-tiny",
    "--image-shape",
    "1,28,28",
    "--max-train-images",
    "32",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--max-eval-images",
    "16",
    "--num-samples",
    "4",
    "--num-completions",
    "1",
    "--sample-every",
    "0",
]

NO_DRAWING = ["--num-samples", "0", "--num-completions", "0"]  # for runs that only train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY_RUN, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    return run


def test_train_writes_a_complete_run(run_dir: Path) -> None:
    for name in ("config.json", "results.json", "samples.png", "completions.png", "loss_curve.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "best" / "model.safetensors").is_file()


def test_evaluate_prints_and_writes_json(
    run_dir: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(run_dir),
            "--split",
            "test",
            "--max-images",
            "16",
            "--data-dir",
            str(data_dir),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["dataset"] == "binarized-mnist" and printed["num_images"] == 16
    stored = json.loads((run_dir / "results.json").read_text())
    assert printed["nats_per_image"] == pytest.approx(stored["nats_per_image"], rel=1e-9)


def test_sample_and_complete_write_grids(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "-n", "4", "-o", str(grid), "--seed", "1"]) == 0
    assert Image.open(grid).size == (2 * (2 + 2 * 30), 2 * (2 + 2 * 30))  # 2x2 grid, 2x scale
    comp = tmp_path / "comp.png"
    code = main(
        [
            "complete",
            str(run_dir),
            "--occlude",
            "right-half",
            "-n",
            "3",
            "--num-completions",
            "2",
            "-o",
            str(comp),
            "--data-dir",
            str(data_dir),
        ]
    )
    assert code == 0
    assert Image.open(comp).size == (2 * (2 + 3 * 30), 2 * (2 + 4 * 30))  # 3 columns, 4 rows


def test_sample_methods_draw_the_same_grid(run_dir: Path, tmp_path: Path) -> None:
    grids = {}
    for method in ("cached", "naive"):
        grids[method] = tmp_path / f"{method}.png"
        args = ["sample", str(run_dir), "-n", "4", "--method", method, "-o", str(grids[method])]
        assert main(args) == 0
    assert grids["cached"].read_bytes() == grids["naive"].read_bytes()


def test_listings(capsys) -> None:
    assert main(["models"]) == 0 and "pixelcnn" in capsys.readouterr().out
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in PRESETS)
    assert main(["datasets"]) == 0 and "binarized-mnist" in capsys.readouterr().out


def test_errors_are_one_clear_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--preset", "nope", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelrnn: error: unknown preset 'nope'") and "Traceback" not in err
    assert main(["train", *TINY_RUN, "--run-dir", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--preset", "pixelcnn-mnist"]) == 2
    assert "drop the model flags" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "no such run" in capsys.readouterr().err
    assert (
        main(["train", "--preset", "pixelcnn-tiny", "--lr", "-1", "--run-dir", str(tmp_path / "y")])
        == 2
    )
    assert "lr must be > 0" in capsys.readouterr().err


def test_boolean_and_optional_flags_parse() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "--model",
            "row_lstm",
            "--residual",
            "false",
            "--skip",
            "yes",
            "--clip-grad-norm",
            "none",
        ]
    )
    assert args.residual is False and args.skip is True and args.clip_grad_norm is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--residual", "maybe"])


def test_cli_flags_cover_every_config_field() -> None:
    """Registry, configs and CLI stay in sync: every field of every config is a train flag."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for cls in [TrainConfig, *model_config_classes()]:
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in flags, f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("preset", ["row-lstm-tiny", "diagonal-bilstm-tiny", "multiscale-tiny"])
def test_recurrent_models_train_evaluate_and_resume(
    preset: str, tmp_path: Path, data_dir: Path
) -> None:
    run = tmp_path / preset
    common = ["--data-dir", str(data_dir)]
    args = [
        "train",
        "--preset",
        preset,
        "--image-shape",
        "1,28,28",
        "--max-train-images",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--max-steps",
        "1",
        "--max-eval-images",
        "8",
        *NO_DRAWING,
        "--run-dir",
        str(run),
    ]
    assert main(args + common) == 0
    assert main(["train", "--resume", str(run), "--max-steps", "none", *common]) == 0
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["epoch"] == 2
    assert json.loads((run / "results.json").read_text())["num_images"] == 8


def test_class_conditional_run_end_to_end(tmp_path: Path, data_dir: Path, capsys) -> None:
    """`--conditional class` on a labelled dataset: labels reach training, evaluation, the
    class grid (one row per class), `sample --label` and completion."""
    run = tmp_path / "cond"
    common = ["--data-dir", str(data_dir)]
    args = [
        "train",
        "--preset",
        "gated-pixelcnn-tiny",
        "--conditional",
        "class",
        "--dataset",
        "mnist",
        "--binarize",
        "threshold",
        "--image-shape",
        "1,28,28",
        "--max-train-images",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--max-eval-images",
        "8",
        "--num-samples",
        "10",
        "--num-completions",
        "1",
        "--sample-every",
        "0",
        "--run-dir",
        str(run),
    ]
    assert main(args + common) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["num_classes"] == 10
    # the class grid: 10 rows (one per class) of 1 image, at 2x scale
    assert Image.open(run / "samples.png").size == (2 * (2 + 30), 2 * (2 + 10 * 30))
    capsys.readouterr()
    grid = tmp_path / "three.png"
    assert main(["sample", str(run), "--label", "3", "-n", "4", "-o", str(grid)]) == 0
    assert "4 samples of class 3" in capsys.readouterr().out
    assert main(["sample", str(run), "--label", "10", "-n", "1", "-o", str(grid)]) == 2
    assert "label must lie in [0, 10)" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--max-images", "8", *common]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 8
    out = tmp_path / "comp.png"
    assert main(["complete", str(run), "-n", "2", "-o", str(out), *common]) == 0
    # errors: an unlabelled dataset asked for, a model without conditioning
    bad = ["train", "--preset", "gated-pixelcnn-tiny", "--conditional", "class"]
    bad += ["--dataset", "binarized-mnist"]
    assert main([*bad, "--run-dir", str(tmp_path / "b"), *common]) == 2
    assert "binarized-mnist' has no class labels" in capsys.readouterr().err
    bad = ["train", "--preset", "pixelcnn-tiny", "--conditional", "class", "--dataset", "mnist"]
    assert main([*bad, "--run-dir", str(tmp_path / "c"), *common]) == 2
    assert "pixelcnn has no class conditioning" in capsys.readouterr().err


def test_conditional_preset_without_labels_trains_on_the_labelled_counterpart(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    """`--preset gated-pixelcnn-mnist --conditional class`, as the docs write it: binarized MNIST
    has no labels, so the run uses MNIST (dynamically binarized) and says so."""
    run = tmp_path / "counterpart"
    args = ["train", "--preset", "gated-pixelcnn-mnist", "--conditional", "class"]
    args += ["--num-layers", "1", "--hidden-channels", "3", "--output-channels", "4"]
    args += ["--max-train-images", "8", "--batch-size", "8", "--max-steps", "1"]
    args += ["--max-eval-images", "8", *NO_DRAWING, "--run-dir", str(run)]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    assert "binarized-mnist has no class labels: training on mnist" in capsys.readouterr().out
    training = json.loads((run / "config.json").read_text())["training"]
    assert (training["dataset"], training["binarize"]) == ("mnist", "dynamic")


def test_label_needs_a_conditional_run(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["sample", str(run_dir), "--label", "1", "-o", str(tmp_path / "x.png")]) == 2
    assert "needs a class-conditional model" in capsys.readouterr().err


def test_console_script_runs_as_a_new_user_would(tmp_path: Path, data_dir: Path) -> None:
    """The installed `pixelrnn` command (which may re-execute itself under tcmalloc) and
    `python -m pixelrnn`, as separate processes."""
    exe = shutil.which("pixelrnn")
    assert exe is not None, "the package is not installed with its console script"
    env = {**os.environ, "PIXELRNN_DATA": str(data_dir)}
    run = tmp_path / "run"
    cmd = [
        exe,
        "train",
        *TINY_RUN,
        "--max-steps",
        "1",
        *NO_DRAWING,
        "--run-dir",
        str(run),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stopped: max_steps" in done.stdout and (run / "results.json").is_file()
    version = subprocess.run(
        [sys.executable, "-m", "pixelrnn", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.startswith("pixelrnn ")
    bad = subprocess.run(
        [exe, "evaluate", str(tmp_path / "missing")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("pixelrnn: error:")
    assert "Traceback" not in bad.stderr


def test_pixelcnnpp_preset_trains_with_its_defaults_and_samples(
    tmp_path: Path, data_dir: Path
) -> None:
    """The preset's training defaults (Adam, EMA 0.9995) apply unless a flag says otherwise;
    the grey MNIST preset trains on 8-bit MNIST, evaluates and samples from the run."""
    run = tmp_path / "pp"
    common = ["--data-dir", str(data_dir)]
    args = ["train", "--preset", "pixelcnnpp-mnist", "--nr-resnet", "1", "--nr-filters", "8"]
    args += ["--max-train-images", "16", "--batch-size", "8", "--max-steps", "2"]
    args += ["--max-eval-images", "8", "--lr", "0.002", *NO_DRAWING, "--run-dir", str(run)]
    assert main(args + common) == 0
    training = json.loads((run / "config.json").read_text())["training"]
    assert training["dataset"] == "mnist" and training["binarize"] is None
    assert (training["optimizer"], training["ema_decay"], training["lr"]) == ("adam", 0.9995, 0.002)
    grid = tmp_path / "pp.png"
    assert main(["sample", str(run), "-n", "2", "-o", str(grid)]) == 0
    assert grid.is_file()
