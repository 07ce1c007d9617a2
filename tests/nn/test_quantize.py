"""The vector quantiser of VQ-VAE: nearest code against a brute-force search, the
straight-through gradient, the moving-average update against its formula, the restart of a dead
code, and the codebook usage figures."""

from __future__ import annotations

import math
import socket

import numpy as np
import torch

from pixelrnn.nn import VectorQuantizer, codebook_usage


def test_the_nearest_code_is_the_brute_force_one() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(37, 5)
    z = torch.randn(400, 5) * 1.5
    brute = torch.stack([((quantizer.codebook - row).square().sum(1)).argmin() for row in z])
    assert torch.equal(quantizer.nearest(z), brute)
    quantized = quantizer.eval()(z.t().reshape(1, 5, 20, 20))
    assert torch.equal(quantized.codes.flatten(), brute)
    torch.testing.assert_close(quantizer.lookup(quantized.codes), quantized.z_q)


def test_the_gradient_passes_straight_through() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 3, ema=False)
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    weights = torch.randn(2, 3, 4, 4)
    quantized = quantizer(z_e)
    (quantized.z_q * weights).sum().backward()
    torch.testing.assert_close(z_e.grad, weights)  # ∂L/∂z_q copied to z_e
    z_e.grad = None
    quantized = quantizer(z_e)
    quantized.codebook.sum().backward()  # the codebook loss moves the codes, not the encoder
    assert z_e.grad is None and quantizer.codebook.grad.abs().sum() > 0
    quantized = quantizer(z_e)
    quantized.commitment.sum().backward()  # the commitment loss moves the encoder only
    expected = 2 * (z_e - quantizer.lookup(quantized.codes)).detach()
    torch.testing.assert_close(z_e.grad, expected)


def test_the_moving_average_update_follows_its_formula() -> None:
    torch.manual_seed(0)
    k, d, decay, eps = 4, 2, 0.9, 1e-5
    quantizer = VectorQuantizer(k, d, ema=True, decay=decay, dead_threshold=0).train()
    count, total = quantizer.ema_count.clone(), quantizer.ema_sum.clone()
    z = torch.randn(1, d, 3, 5)
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    codes = quantizer.nearest(flat)
    quantizer(z)
    one_hot = torch.nn.functional.one_hot(codes, k).float()
    count = decay * count + (1 - decay) * one_hot.sum(0)
    total = decay * total + (1 - decay) * one_hot.t() @ flat
    n = count.sum()
    smoothed = (count + eps) / (n + k * eps) * n
    torch.testing.assert_close(quantizer.ema_count, count)
    torch.testing.assert_close(quantizer.codebook, total / smoothed[:, None])


def test_a_dead_code_is_restarted_on_an_encoder_output() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(3, 2, ema=True, decay=0.5, dead_threshold=0.2).train()
    with torch.no_grad():
        quantizer.codebook[2] = 100.0  # far from everything: never chosen
        quantizer.ema_sum[2] = 100.0
    z = torch.randn(1, 2, 4, 4)
    for _ in range(3):  # its count halves each step: 0.5, 0.25, 0.125 < 0.2
        quantizer(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    assert (quantizer.codebook[2] - flat).abs().sum(1).min() < 1e-6  # now one of the outputs
    assert quantizer.ema_count[2] == 1.0


def test_codebook_usage_is_the_perplexity_and_the_unused_codes() -> None:
    perplexity, unused = codebook_usage(torch.tensor([5, 5, 5, 5, 0, 0]))
    assert math.isclose(perplexity, 4.0) and unused == 2
    perplexity, unused = codebook_usage(torch.tensor([9, 0, 0]))
    assert math.isclose(perplexity, 1.0) and unused == 2


def _two_process_update(rank: int, port: int, folder: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    torch.manual_seed(0)
    quantizer = VectorQuantizer(5, 3, decay=0.8, dead_threshold=0).train()
    z = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(7))
    quantizer(z[rank : rank + 1])  # each process its own image
    np.save(f"{folder}/codebook{rank}.npy", quantizer.codebook.numpy())
    torch.distributed.destroy_process_group()


def test_processes_update_one_codebook_from_all_their_batches(tmp_path) -> None:
    """Two processes, one image each, update the codebook as one process with both images."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_two_process_update, args=(port, str(tmp_path)), nprocs=2)
    books = [torch.from_numpy(np.load(tmp_path / f"codebook{r}.npy")) for r in (0, 1)]
    torch.manual_seed(0)
    single = VectorQuantizer(5, 3, decay=0.8, dead_threshold=0).train()
    single(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(7)))
    torch.testing.assert_close(books[0], books[1])
    torch.testing.assert_close(books[0], single.codebook)
