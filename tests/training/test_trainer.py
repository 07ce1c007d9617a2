"""The training loop: exact resumption, checkpoints, metrics, evaluation sums, overfitting."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.files import replace_dir
from pixelrnn.training import TrainConfig, Trainer, evaluate_nll
from tests.helpers import reseal, tiny_model

FAST = dict(
    dataset="binarized-mnist",
    max_train_images=48,
    batch_size=16,
    epochs=3,
    max_eval_images=32,
    eval_batch_size=32,
    num_samples=2,
    num_completions=1,
    checkpoint_every=2,
    log_every=1,
    optimizer="adam",
    lr=3e-3,
    lr_schedule="cosine",
)


def make_trainer(run_dir: Path, data_dir: Path, **overrides: object) -> Trainer:
    model = tiny_model(1, 2, size=28, seed=0)
    return Trainer(model, TrainConfig(**{**FAST, **overrides}), run_dir, data_dir)


def weights(run_dir: Path, which: str = "last") -> bytes:
    return (run_dir / which / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("runs") / "full"
    assert make_trainer(run, data_dir).fit() == "done"
    return run


def test_run_directory_contents(uninterrupted: Path) -> None:
    names = {p.name for p in uninterrupted.iterdir()}
    assert {
        "config.json",
        "last",
        "best",
        "metrics.jsonl",
        "loss_curve.png",
        "samples.png",
        "completions.png",
        "results.json",
        "samples_epoch001.png",
    } <= names
    cfg = json.loads((uninterrupted / "config.json").read_text())
    assert cfg["model"] == "pixelcnn" and cfg["training"]["epochs"] == 3
    state = json.loads((uninterrupted / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 9 and state["epoch"] == 3
    events = [
        json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["step"] for e in events if e["event"] == "train"] == list(range(1, 10))
    assert len([e for e in events if e["event"] == "valid"]) == 3
    (test,) = [e for e in events if e["event"] == "test"]
    results = json.loads((uninterrupted / "results.json").read_text())
    assert results["num_images"] == 32 and results["nats_per_image"] == test["nats_per_image"]
    assert results["bits_per_dim"] == pytest.approx(
        results["nats_per_image"] / (784 * 0.6931471805599453)
    )
    model = pixelrnn.load_pretrained(uninterrupted)  # a run directory loads its best weights
    assert model.image_shape == (1, 28, 28)


@pytest.mark.parametrize("stops", [[4], [2, 5, 7]])
def test_resume_after_stops_is_bitwise_identical(
    uninterrupted: Path, tmp_path: Path, data_dir: Path, stops: list[int]
) -> None:
    run = tmp_path / "stopped"
    # drawing is off here: sampling uses its own generators and cannot change the weights
    no_drawing = dict(num_samples=0, num_completions=0)
    assert make_trainer(run, data_dir, max_steps=stops[0], **no_drawing).fit() == "max_steps"
    for s in [*stops[1:], None]:
        trainer = Trainer.resume(run, {"max_steps": s}, data_dir)
        assert trainer.fit() == ("done" if s is None else "max_steps")
    assert weights(run) == weights(uninterrupted)
    assert weights(run, "best") == weights(uninterrupted, "best")
    steps = [
        json.loads(x)["step"]
        for x in (run / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["event"] == "train"
    ]
    assert steps == list(range(1, 10))  # no duplicated or lost lines


def test_resume_takes_this_runs_capturable_setting(
    uninterrupted: Path, tmp_path: Path, data_dir: Path
) -> None:
    """A run stored by a recorded-step (``--cuda-graph``) trainer holds a capturable optimizer;
    resumed without recording (here on the CPU, where a capturable optimizer cannot step), it
    continues exactly as the uninterrupted run. The other direction, a run stored without it
    and resumed with ``--cuda-graph true``, is in ``tests/gpu``."""
    run = tmp_path / "stopped"
    no_drawing = dict(num_samples=0, num_completions=0)
    assert make_trainer(run, data_dir, max_steps=4, **no_drawing).fit() == "max_steps"
    state_file = run / "last" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True  # what a run trained with --cuda-graph true stores
    state_file.write_text(json.dumps(state))
    reseal(state_file.parent)  # a state written with the other setting, not a damaged file
    trainer = Trainer.resume(run, {"max_steps": None}, data_dir)
    assert not any(g["capturable"] for g in trainer.optimizer.param_groups)
    assert trainer.fit() == "done"
    assert weights(run) == weights(uninterrupted)


def test_sigterm_checkpoints_and_resume_matches(
    uninterrupted: Path, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "killed"
    trainer = make_trainer(run, data_dir, num_samples=0, num_completions=0)
    original = Trainer.train_step
    calls = {"n": 0}

    def step_then_kill(self: Trainer, *args: object, **kwargs: object) -> float:
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a cluster scheduler would
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_kill)
    assert trainer.fit() == "signal"
    assert not (run / "results.json").exists()
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    monkeypatch.setattr(Trainer, "train_step", original)
    assert Trainer.resume(run, data_dir=data_dir).fit() == "done"
    assert weights(run) == weights(uninterrupted)


def test_drop_last_takes_only_full_batches_and_resumes_exactly(
    tmp_path: Path, data_dir: Path
) -> None:
    """With ``drop_last``, 40 images at batch 16 make two steps per epoch, each of 16 images
    (without it: three, the last of 8); a run stopped mid-epoch and resumed ends with the
    weights of the uninterrupted one."""
    sizes: list[int] = []
    original = Trainer.train_step

    def record(self: Trainer, x: torch.Tensor, *args: object, **kwargs: object) -> float:
        sizes.append(len(x))
        return original(self, x, *args, **kwargs)

    settings = dict(max_train_images=40, drop_last=True, num_samples=0, num_completions=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_step", record)
        assert make_trainer(tmp_path / "full", data_dir, **settings).fit() == "done"
    assert sizes == [16] * 6
    state = json.loads((tmp_path / "full" / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["epoch"] == 3
    run = tmp_path / "stopped"
    assert make_trainer(run, data_dir, max_steps=3, **settings).fit() == "max_steps"
    assert Trainer.resume(run, {"max_steps": None}, data_dir).fit() == "done"
    assert weights(run) == weights(tmp_path / "full")
    sizes.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_step", record)
        kept = {**settings, "drop_last": False, "epochs": 1}
        assert make_trainer(tmp_path / "kept", data_dir, **kept).fit() == "done"
    assert sizes == [16, 16, 8]
    with pytest.raises(ValueError, match="no full batch"):
        make_trainer(tmp_path / "none", data_dir, max_train_images=10, drop_last=True)


def test_time_budget_stops_and_still_reports(tmp_path: Path, data_dir: Path) -> None:
    trainer = make_trainer(
        tmp_path / "budget", data_dir, epochs=1000, time_budget_minutes=1e-4, num_completions=0
    )
    assert trainer.fit() == "time_budget"
    assert (tmp_path / "budget" / "results.json").is_file()
    assert (tmp_path / "budget" / "samples.png").is_file()


def test_dataset_must_match_the_model(tmp_path: Path, data_dir: Path) -> None:
    model = tiny_model(1, 2, size=28)
    with pytest.raises(ValueError, match="256-level images"):
        Trainer(model, TrainConfig(**{**FAST, "dataset": "mnist"}), tmp_path, data_dir)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device": "cpu"}, "train with --device cuda"),
        ({"device": "cuda", "compile": True}, "exclude each other"),
        ({"device": "cuda", "lr_schedule": "cosine"}, "use --lr-schedule constant"),
    ],
)
def test_cuda_graph_refuses_what_it_cannot_record(
    tmp_path: Path, data_dir: Path, overrides: dict, message: str
) -> None:
    if overrides["device"] == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to reach the check")
    with pytest.raises(ValueError, match=message):
        make_trainer(tmp_path, data_dir, cuda_graph=True, **overrides)


def test_training_config_validation() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"TrainConfig: unknown field\(s\)"):
        TrainConfig.from_dict({"epoch": 3})


def test_overfits_one_batch(data_dir: Path) -> None:
    data = load_dataset("binarized-mnist", "valid", data_dir).head(16)
    model = tiny_model(1, 2, size=28, hidden_channels=8, num_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = data.batch(slice(0, 16))
    first = float(-model.log_prob(x).detach().mean())
    for _ in range(150):
        loss = -model.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = float(-model.log_prob(x).detach().mean())
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn"])
def test_bf16_training_loss_is_within_one_percent_of_fp32(name: str, data_dir: Path) -> None:
    """bfloat16 autocast (``precision="bf16"``) changes the training loss by less than 1 %
    and still trains; evaluation stays in float32."""
    data = load_dataset("binarized-mnist", "valid", data_dir).head(16)
    model = tiny_model(1, 2, size=28, model=name, hidden_channels=9, num_layers=3)
    x = data.batch(slice(0, 16))
    with torch.no_grad():
        exact = model.log_prob(x).mean()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model.log_prob(x).mean()
    assert fast.dtype == torch.float32  # the likelihood itself is computed in float32
    assert abs(float(fast - exact)) < 0.01 * abs(float(exact))


def test_bf16_trainer_runs_and_evaluates_in_fp32(tmp_path: Path, data_dir: Path) -> None:
    trainer = make_trainer(tmp_path / "bf16", data_dir, precision="bf16", epochs=1)
    assert trainer.fit() == "done"
    result = json.loads((tmp_path / "bf16" / "results.json").read_text())
    best = pixelrnn.load_pretrained(tmp_path / "bf16" / "best")
    test = load_dataset("binarized-mnist", "test", data_dir)
    exact = evaluate_nll(best, test, batch_size=32, max_images=32)
    assert result["nats_per_image"] == pytest.approx(exact.nats_per_image, rel=1e-6)
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


def test_gradient_accumulation_takes_the_same_steps(tmp_path: Path, data_dir: Path) -> None:
    """Micro-batches of 6, 5 and 5 images add up to the gradient of the batch of 16."""
    whole = make_trainer(tmp_path / "whole", data_dir, max_steps=3, num_samples=0)
    split = make_trainer(
        tmp_path / "split", data_dir, max_steps=3, num_samples=0, grad_accumulation=3
    )
    assert whole.fit() == split.fit() == "max_steps"
    for a, b in zip(whole.model.parameters(), split.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_loader_workers_feed_the_same_batches(uninterrupted: Path, tmp_path: Path, data_dir: Path):
    """Batches are a function of (seed, epoch, step): two DataLoader workers change nothing."""
    run = tmp_path / "workers"
    assert make_trainer(run, data_dir, num_workers=2).fit() == "done"
    assert weights(run) == weights(uninterrupted)


def compile_supported() -> bool:
    try:
        torch.compile(lambda t: t * 2)(torch.ones(2))
    except Exception:  # no C++ toolchain, unsupported platform, ...
        return False
    return True


def test_compiled_training_matches_eager(tmp_path: Path, data_dir: Path) -> None:
    if not compile_supported():
        pytest.skip("torch.compile does not work here")
    eager = make_trainer(tmp_path / "eager", data_dir, max_steps=2, num_samples=0)
    compiled = make_trainer(
        tmp_path / "compiled", data_dir, max_steps=2, num_samples=0, compile=True
    )
    assert eager.fit() == compiled.fit() == "max_steps"
    for a, b in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_a_compiled_model_traces_without_a_graph_break() -> None:
    """The input range check reads values, which would split the compiled graph; it is
    skipped while tracing (the trainer checks each batch before a compiled step)."""
    if not compile_supported():
        pytest.skip("torch.compile does not work here")
    model = tiny_model(1, 2, size=4, seed=0)
    x = torch.randint(0, 2, (2, 1, 4, 4))
    explanation = torch._dynamo.explain(model.log_prob)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_a_compiled_training_step_still_refuses_out_of_range_pixels(
    tmp_path: Path, data_dir: Path
) -> None:
    trainer = make_trainer(tmp_path / "compiled", data_dir, compile=True)
    bad = torch.zeros(2, 1, 28, 28, dtype=torch.long)
    bad[0, 0, 3, 5] = 2  # a binary model's levels are 0 and 1
    with pytest.raises(ValueError, match=r"values must lie in \[0, 2\), got min 0, max 2"):
        trainer.train_step(bad)


def test_evaluation_sums_every_image_exactly() -> None:
    model = tiny_model(1, 4, size=4)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 4, (23, 1, 4, 4), generator=g).to(torch.uint8)
    data = ImageDataset("synthetic", "test", images, None, 4)
    whole = evaluate_nll(model, data, batch_size=100)
    pieces = evaluate_nll(model, data, batch_size=5)  # 4 batches of 5 and one of 3
    manual = float(-model.log_prob(images.long()).detach().double().sum()) / 23
    assert whole.num_images == pieces.num_images == 23
    assert whole.nats_per_image == pytest.approx(manual, rel=1e-12)
    assert pieces.nats_per_image == pytest.approx(manual, rel=1e-6)
    assert evaluate_nll(model, data, batch_size=5, max_images=7).num_images == 7


def test_written_files_get_the_usual_permissions(uninterrupted: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in [uninterrupted / "config.json", uninterrupted / "last" / "model.safetensors"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert (uninterrupted / "last").stat().st_mode & 0o777 == 0o777 & ~umask


def test_checkpoint_swap_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "last"
    replace_dir(lambda d: (d / "a").write_text("old"), target)

    def broken(d: Path) -> None:
        (d / "a").write_text("half-written")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        replace_dir(broken, target)
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
