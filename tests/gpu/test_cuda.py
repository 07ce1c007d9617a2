"""The CUDA paths: every model, the Diagonal BiLSTM scan, cached sampling, training (fp32,
bf16) on a GPU, against the CPU and the slow references.

Marked ``gpu``: the default run skips them; ``python -m pytest -m gpu`` runs them on a machine
with a CUDA device (they skip where there is none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.nn import DiagonalBiLSTM
from pixelrnn.training import TrainConfig, Trainer
from pixelrnn.training.cuda_graph import GraphedTrainStep
from tests.helpers import assert_causal, random_images, random_labels, tiny_model
from tests.sampling.test_cached import CASES as SAMPLING_CASES
from tests.sampling.test_cached import case_model
from tests.training.test_distributed import TINY

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")
MODELS = [(name, c) for name in pixelrnn.available_models() for c in (1, 3)]


def _model(name: str, channels: int, size: int = 5) -> pixelrnn.AutoregressiveModel:
    return tiny_model(channels, 2 if channels == 1 else 4, size=size, model=name).double()


@pytest.mark.parametrize(("name", "channels"), MODELS)
def test_cuda_scores_equal_the_cpu_scores(name: str, channels: int) -> None:
    """The float64 network's parameters on the GPU equal the CPU's to float64 rounding; the
    log-probabilities, which the distributions compute in float32, to float32 rounding.
    (The PixelCNN++ passes since its weight norm is pixelrnn.nn.weight_norm: PyTorch's fused
    CUDA kernel was float32-precise in float64; seen passing on an H100.)"""
    model = _model(name, channels, size=7).eval()
    x, y = random_images(model, 3), random_labels(model, 3)
    with torch.no_grad():
        cpu = model(x, y), model.log_prob(x, reduction="none", y=y)
        model.to(CUDA)
        gpu = model(x.to(CUDA), y), model.log_prob(x.to(CUDA), reduction="none", y=y)
    assert gpu[0].is_cuda and gpu[1].is_cuda
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "channels"), MODELS)
def test_causality_on_cuda(name: str, channels: int) -> None:
    """The shared causality check, run on the GPU (float64, exact comparisons)."""
    assert_causal(_model(name, channels, size=4).to(CUDA))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("native", ["0", "1"])
def test_diagonal_scan_on_cuda_equals_the_cpu(
    dtype: torch.dtype, native: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values and every gradient of the layer, GPU against CPU, through the compiled column
    loops (ATen calls on CUDA tensors) and the Python ones."""
    monkeypatch.setenv("PIXELRNN_NATIVE", native)
    torch.manual_seed(2)
    layer = DiagonalBiLSTM(12, 8, 3).to(dtype)
    x = torch.randn(5, 12, 9, 7, dtype=dtype)
    weights = torch.randn(5, 8, 9, 7, dtype=dtype)

    def values_and_gradients(device: torch.device) -> list[torch.Tensor]:
        moved = layer.to(device)
        xd = x.to(device).requires_grad_()
        out = moved(xd)
        grads = torch.autograd.grad((out * weights.to(device)).sum(), [xd, *moved.parameters()])
        return [t.detach().cpu() for t in (out, *grads)]

    cpu = values_and_gradients(torch.device("cpu"))
    gpu = values_and_gradients(CUDA)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    for a, b in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def test_diagonal_scan_under_cuda_bf16_autocast() -> None:
    """Under CUDA autocast the scan runs in bfloat16; parameter gradients stay float32 and
    both are within bfloat16's precision of the float32 ones."""
    torch.manual_seed(3)
    layer = DiagonalBiLSTM(8, 4, 1).to(CUDA)
    x = torch.randn(2, 8, 6, 5, device=CUDA, requires_grad=True)
    weights = torch.randn(2, 4, 6, 5, device=CUDA)

    def run() -> list[torch.Tensor]:
        out = layer(x)
        grads = torch.autograd.grad((out.float() * weights).sum(), [x, *layer.parameters()])
        return [out, *grads]

    exact = run()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fast = run()
    assert fast[0].dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in fast[2:])
    for a, b in zip(fast, exact, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(("name", "channels", "conditional"), SAMPLING_CASES)
def test_cached_sampling_on_cuda_draws_the_naive_images(
    name: str, channels: int, conditional: bool
) -> None:
    """Same CUDA generator state, same images, cached and naive, on the GPU (float64)."""
    model = case_model(name, channels, conditional).double().to(CUDA)
    y = random_labels(model, 3, seed=3)
    images = {}
    for method in ("naive", "cached"):
        generator = torch.Generator(CUDA).manual_seed(0)
        images[method] = pixelrnn.sample(model, 3, generator=generator, y=y, method=method)
    assert images["cached"].is_cuda
    assert torch.equal(images["cached"], images["naive"])


def _train(run: Path, data_dir: Path, *args: str) -> None:
    env = {**os.environ, "PIXELRNN_DATA": str(data_dir)}
    command = [sys.executable, "-m", "pixelrnn", "train", *args]
    done = subprocess.run(
        [*command, "--run-dir", str(run)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _cuda_args(*extra: str) -> list[str]:
    args = [a if a != "cpu" else "cuda" for a in TINY]
    return [*args, "--max-steps", "6", *extra]


@pytest.mark.parametrize("preset", ["pixelcnn-tiny", "diagonal-bilstm-tiny"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_cuda(tmp_path: Path, data_dir: Path, preset: str, precision: str) -> None:
    """`pixelrnn train --device cuda` runs, evaluates and writes a finite test NLL."""
    args = _cuda_args("--precision", precision)
    args[1] = preset
    _train(tmp_path / "run", data_dir, *args)
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["num_images"] == 20
    assert 0 < result["bits_per_dim"] < 1.0


class _NeverRecorded:
    """Stands in for a recorded step that matches no batch: every step is the ordinary one."""

    def matches(self, x: torch.Tensor, y: torch.Tensor | None) -> bool:
        return False


@pytest.fixture
def deterministic_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's deterministic algorithms, chosen without benchmarking. Without them two
    *ordinary* runs of the same steps already differ: on an H100 the PixelCNN++'s
    weights after 9 RMSprop steps differed by up to 23 % relative between two ordinary runs,
    because RMSprop's and Adam's first steps turn rounding differences in near-zero gradient
    entries into full-size updates (``g / sqrt(v)`` is about ``±1`` however small ``g`` is)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


REPLAY_CASES = [
    ("pixelcnn", {}),
    ("diagonal_bilstm", {}),
    ("pixelcnnpp", {"nr_filters": 4, "dropout": 0.0}),
    ("gated_pixelcnn", {"num_classes": 10}),
]


def _replay_pair(
    tmp_path: Path, data_dir: Path, name: str, extra: dict, optimizer: str
) -> tuple[Trainer, Trainer, bool]:
    """Two trainers with the same model, data and (capturable) optimizer: the first records
    its step at its first batch, the second always takes the ordinary step."""
    from tests.training.test_trainer import FAST

    labelled = "num_classes" in extra  # a conditional model trains on labelled digits
    data = {"dataset": "mnist", "binarize": "threshold"} if labelled else {}
    config = TrainConfig(
        **{**FAST, "lr_schedule": "constant", "optimizer": optimizer, "batch_size": 8, **data},
        device="cuda",
        cuda_graph=True,
    )

    def trainer(run: str) -> Trainer:
        model = tiny_model(1, 2, size=28, model=name, **extra)
        return Trainer(model, config, tmp_path / run, data_dir)

    graphed, ordinary = trainer("graphed"), trainer("ordinary")
    ordinary.run_step.graphed = _NeverRecorded()  # type: ignore[attr-defined]
    return graphed, ordinary, labelled


def _batch(
    size: int, labelled: bool, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = torch.randint(0, 2, (size, 1, 28, 28), generator=g).cuda()
    return x, torch.randint(0, 10, (size,), generator=g).cuda() if labelled else None


@pytest.mark.usefixtures("deterministic_cudnn")
@pytest.mark.parametrize(("name", "extra"), REPLAY_CASES)
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_cuda_graph_replays_the_ordinary_steps(
    tmp_path: Path,
    data_dir: Path,
    name: str,
    extra: dict,
    optimizer: str,
    request: pytest.FixtureRequest,
) -> None:
    """Step by step, a trainer replaying its recorded step against one taking the ordinary
    steps with the same (capturable) optimizer: the same losses and weights. Batches of 8, 8,
    then 4 images (an epoch's short last batch, which takes the ordinary step between
    replays), three times over; the recording is made at the first batch, after a warm-up
    whose updates are undone. (Dropout off: a replay draws its own masks.)"""
    if name == "diagonal_bilstm":
        request.applymarker(
            pytest.mark.xfail(
                reason="on an H100 (deterministic cuDNN) the first two steps' "
                "losses were equal, later ones differed by up to 1e-5 (Adam) and 1e-4 "
                "(RMSprop) relative: the recorded step's update differs from the ordinary one "
                "at rounding level (two ordinary runs were bitwise equal), and the optimizers "
                "amplify it; test_a_recorded_step_computes_the_ordinary_gradients bounds the "
                "difference of one step",
                strict=False,
            )
        )
    graphed, ordinary, labelled = _replay_pair(tmp_path, data_dir, name, extra, optimizer)
    g = torch.Generator().manual_seed(0)
    for size in [8, 8, 4] * 3:
        x, y = _batch(size, labelled, g)
        losses = graphed.train_step(x, y), ordinary.train_step(x, y)
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert isinstance(graphed.run_step.graphed, GraphedTrainStep)
    a, b = graphed.model.state_dict(), ordinary.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.usefixtures("deterministic_cudnn")
@pytest.mark.parametrize(("name", "extra"), REPLAY_CASES)
def test_a_recorded_step_computes_the_ordinary_gradients(
    tmp_path: Path, data_dir: Path, name: str, extra: dict
) -> None:
    """One step from the same weights (the first, recorded then replayed, against the
    ordinary one): the same loss and, to float32 rounding, the same clipped gradients, so a
    recorded step reads no stale memory. The optimizers' later amplification is left out."""
    graphed, ordinary, labelled = _replay_pair(tmp_path, data_dir, name, extra, "adam")
    x, y = _batch(8, labelled, torch.Generator().manual_seed(0))
    losses = graphed.train_step(x, y), ordinary.train_step(x, y)
    assert isinstance(graphed.run_step.graphed, GraphedTrainStep)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for (key, p), q in zip(
        graphed.model.named_parameters(), ordinary.model.parameters(), strict=True
    ):
        assert p.grad is not None and q.grad is not None, key
        scale = q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * scale, msg=key)


def test_a_run_resumes_with_a_recorded_step(tmp_path: Path, data_dir: Path) -> None:
    """A run trained with ordinary steps (its optimizer stored as not capturable) continues
    with ``--cuda-graph true``: the optimizer is rebuilt capturable, step counts on the GPU
    (without the rebuild it fails with "capturable is False")."""
    run = tmp_path / "run"
    _train(run, data_dir, *_cuda_args("--lr-schedule", "constant"))
    env = {**os.environ, "PIXELRNN_DATA": str(data_dir)}
    command = [sys.executable, "-m", "pixelrnn", "train", "--resume", str(run)]
    command += ["--max-steps", "9", "--cuda-graph", "true"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 9
    assert all(group["capturable"] for group in state["optimizer"]["param_groups"])
