"""Polyak averaging (EMA) and data-dependent initialisation in the trainer (PixelCNN++ §3.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.training import TrainConfig, Trainer, evaluate_nll
from pixelrnn.training import figures as figures_module
from pixelrnn.training.ema import ema_with_warmup
from tests.helpers import tiny_model
from tests.training.test_trainer import FAST as TRAINER_FAST

# the trainer tests' fast settings, two epochs, a fast-moving average
FAST = {
    **TRAINER_FAST,
    **dict(epochs=2, num_completions=0, lr=1e-2, lr_schedule="constant", ema_decay=0.5),
}


def make_trainer(
    run_dir: Path, data_dir: Path, dropout: float = 0.0, **overrides: object
) -> Trainer:
    model = tiny_model(1, 2, size=28, seed=0, model="pixelcnnpp", nr_filters=4, dropout=dropout)
    return Trainer(model, TrainConfig(**{**FAST, **overrides}), run_dir, data_dir)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_evaluation_checkpoints_and_samples_use_the_averaged_weights(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampled: list[dict[str, torch.Tensor]] = []
    real_sample_grid = figures_module.sample_grid

    def recording_sample_grid(model, n, generator):  # type: ignore[no-untyped-def]
        sampled.append(state(model))
        return real_sample_grid(model, n, generator)

    monkeypatch.setattr(figures_module, "sample_grid", recording_sample_grid)
    trainer = make_trainer(tmp_path / "run", data_dir)
    assert trainer.fit() == "done"
    ema, raw = state(trainer.evaluation_model), state(trainer.model)
    assert trainer.evaluation_model is trainer.ema.module  # type: ignore[union-attr]
    assert any(not torch.equal(ema[k], raw[k]) for k in ema), "the average must differ"
    # every model.safetensors holds the averaged weights; last/ also keeps the raw ones
    saved = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    assert all(torch.equal(saved[k], ema[k]) for k in ema)
    state_tensors = load_file(str(tmp_path / "run" / "last" / "trainer_state.safetensors"))
    assert all(torch.equal(state_tensors["train_weights." + k], raw[k]) for k in raw)
    # the last validation is the averaged weights' score, not the raw weights'
    events = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last_valid = [e for e in events if e["event"] == "valid"][-1]
    valid = load_dataset("binarized-mnist", "valid", data_dir)
    scores = {
        name: evaluate_nll(model, valid, 32, max_images=32).nats_per_image
        for name, model in (("ema", trainer.evaluation_model), ("raw", trainer.model))
    }
    assert last_valid["nats_per_image"] == pytest.approx(scores["ema"], rel=1e-6)
    assert scores["raw"] != pytest.approx(scores["ema"], rel=1e-4)
    # samples (every epoch and the final grid) were drawn with averaged weights
    assert len(sampled) == 3
    assert all(torch.equal(sampled[1][k], ema[k]) for k in ema)  # epoch 2 = the end of training
    best = pixelrnn.load_pretrained(tmp_path / "run" / "best")
    assert all(torch.equal(sampled[2][k], best.state_dict()[k]) for k in ema)


def test_a_resumed_ema_run_is_bitwise_the_uninterrupted_one(tmp_path: Path, data_dir: Path) -> None:
    """Raw and averaged weights, optimizer and random state — with dropout drawing from it."""
    quiet = dict(num_samples=0, dropout=0.5)
    assert make_trainer(tmp_path / "full", data_dir, **quiet).fit() == "done"
    assert make_trainer(tmp_path / "cut", data_dir, max_steps=2, **quiet).fit() == "max_steps"
    assert Trainer.resume(tmp_path / "cut", {"max_steps": None}, data_dir).fit() == "done"
    for name in ("model.safetensors", "trainer_state.safetensors"):
        full = load_file(str(tmp_path / "full" / "last" / name))
        cut = load_file(str(tmp_path / "cut" / "last" / name))
        assert full.keys() == cut.keys()
        assert all(torch.equal(full[k], cut[k]) for k in full), name


def test_data_dependent_init_runs_once_before_the_first_step(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    trainer = make_trainer(tmp_path / "run", data_dir, max_steps=1, num_samples=0)
    real = trainer.model.initialize_from_data  # type: ignore[attr-defined]

    def recording(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        calls.append(len(x))
        real(x, y)

    monkeypatch.setattr(trainer.model, "initialize_from_data", recording)
    before = state(trainer.model)
    trainer.fit()
    assert calls == [16]
    # resuming at step 1 does not initialise again
    resumed = Trainer.resume(tmp_path / "run", {"max_steps": 2}, data_dir)
    monkeypatch.setattr(resumed.model, "initialize_from_data", recording)
    resumed.fit()
    assert calls == [16]
    # with data_init_images=0 the weights start as built
    off = make_trainer(tmp_path / "off", data_dir, max_steps=1, num_samples=0, data_init_images=0)
    assert all(torch.equal(before[k], v) for k, v in state(off.model).items())


def test_ema_config_validation() -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="data_init_images"):
        TrainConfig(data_init_images=-1)


def test_the_average_warms_up_like_tensorflows() -> None:
    """Decay min(d, (1 + t) / (10 + t)) after t updates; the first update copies the weights."""

    update = ema_with_warmup(0.99)
    averaged, current = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    for t, decay in [(1, 2 / 11), (90, 0.91), (10_000, 0.99)]:
        out = update(averaged, current, torch.tensor(t))
        torch.testing.assert_close(out, torch.full_like(out, 1 - decay), rtol=1e-12, atol=0)
    model = torch.nn.Linear(2, 2)
    ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=update)
    ema.update_parameters(model)
    assert torch.equal(ema.module.weight, model.weight)
