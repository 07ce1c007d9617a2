"""Every file a run reads, damaged as a hostile user (or a failing disk) would: each case through
``train --resume``, ``evaluate`` and ``sample`` gives one clear line on stderr, no traceback,
and leaves every file of the run directory byte for byte as it was (the lock file aside).

A file damaged on disk is caught by its checkpoint's ``checksums.json``; a file *written*
wrongly (a bug, a hand edit) is "resealed" here — its digest recorded again — so that the
check behind the digest is the one tested.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.files import LOCK_NAME
from tests.helpers import reseal

TINY_RUN = [
    "--preset", "pixelcnn-tiny", "--image-shape", "1,28,28", "--max-train-images", "32",
    "--batch-size", "16", "--epochs", "1", "--max-eval-images", "16", "--num-samples", "0",
    "--num-completions", "0", "--sample-every", "0", "--checkpoint-every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("damage") / "run"
    assert main(["train", *TINY_RUN, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    return run


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file's bytes (the lock file, which a command may create, aside)."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


# --- damages: each edits a copy of the run directory --------------------------------------------
def edit_json(relative: str, change: Callable[[dict], object], seal: bool = True):
    def damage(run: Path) -> None:
        path = run / relative
        data = json.loads(path.read_text())
        result = change(data)
        path.write_text(json.dumps(data if result is None else result))
        if seal:
            reseal(path.parent)

    return damage


def edit_tensors(relative: str, change: Callable[[dict], None], seal: bool = True):
    def damage(run: Path) -> None:
        path = run / relative
        tensors = load_file(str(path))
        change(tensors)
        save_file(tensors, str(path))
        if seal:
            reseal(path.parent)

    return damage


def both(damage_of: Callable[[str], Callable[[Path], None]]):
    """The same damage to ``best/`` and ``last/`` (what evaluate and sample read too)."""

    def damage(run: Path) -> None:
        damage_of("best")(run)
        damage_of("last")(run)

    return damage


def raw_bytes(relative: str, change: Callable[[bytes], bytes], seal: bool = False):
    def damage(run: Path) -> None:
        path = run / relative
        path.write_bytes(change(path.read_bytes()))
        if seal:
            reseal(path.parent)

    return damage


def flip_a_bit(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-10] ^= 0x04
    return bytes(damaged)


def append_line(line: str):
    def damage(run: Path) -> None:
        with open(run / "metrics.jsonl", "a") as f:
            f.write(line + "\n")

    return damage


def drop(key: str):
    def change(d: dict) -> None:
        d.pop(key)

    return change


def set_field(section: str | None, key: str, value: object):
    def change(d: dict) -> None:
        (d if section is None else d[section])[key] = value

    return change


def set_weights(change: Callable[[torch.Tensor], torch.Tensor]):
    def edit(tensors: dict) -> None:
        for name in tensors:
            tensors[name] = change(tensors[name])

    return edit


def first_weight(value: float):
    def edit(tensors: dict) -> None:
        name = next(k for k in sorted(tensors) if tensors[k].is_floating_point())
        tensors[name] = tensors[name].clone().fill_(value)

    return edit


RESUME, EVALUATE, SAMPLE = "resume", "evaluate", "sample"
ALL = (RESUME, EVALUATE, SAMPLE)
STATE, TENSORS = "last/trainer_state.json", "last/trainer_state.safetensors"
CASES: list[tuple[str, Callable[[Path], None], tuple[str, ...], str]] = [
    ("state without global_step", edit_json(STATE, drop("global_step")), (RESUME,),
     r"missing field\(s\) \['global_step'\]"),
    ("state without optimizer", edit_json(STATE, drop("optimizer")), (RESUME,),
     "field 'optimizer'"),
    ("state with a negative epoch", edit_json(STATE, set_field(None, "epoch", -1)), (RESUME,),
     "epoch must be >= 0"),
    ("state with a string epoch", edit_json(STATE, set_field(None, "epoch", "1")), (RESUME,),
     "field 'epoch': expected an integer, found '1'"),
    ("state not JSON", raw_bytes(STATE, lambda b: b[:20], seal=True), (RESUME,),
     "not valid JSON"),
    ("state edited on disk", raw_bytes(STATE, lambda b: b.replace(b"1", b"2", 1)), (RESUME,),
     "checkpoint corrupted: .*trainer_state.json differs"),
    ("tensors without the RNG state", edit_tensors(TENSORS, lambda t: t.pop("rng.torch")),
     (RESUME,), "'rng.torch' is missing"),
    ("tensors without an optimizer slot",
     edit_tensors(TENSORS, lambda t: t.pop("optimizer.0.square_avg")), (RESUME,),
     "'optimizer.0.square_avg' is missing"),
    ("optimizer slot of the wrong shape",
     edit_tensors(TENSORS, set_field(None, "optimizer.0.square_avg", torch.zeros(3))),
     (RESUME,), r"optimizer.0.square_avg has shape \(3,\)"),
    ("optimizer slot with NaN",
     edit_tensors(TENSORS, lambda t: t["optimizer.0.square_avg"].fill_(float("nan"))),
     (RESUME,), "NaN or infinite"),
    ("tensors truncated on disk", raw_bytes(TENSORS, lambda b: b[:100]), (RESUME,),
     "checkpoint corrupted"),
    ("tensors truncated when written", raw_bytes(TENSORS, lambda b: b[:100], seal=True),
     (RESUME,), "not a readable safetensors file"),
    ("config without training", edit_json("last/config.json", drop("training")), (RESUME,),
     "field 'training': missing"),
    ("config not an object", edit_json("last/config.json", lambda d: [d]), (RESUME,),
     "field 'training': missing"),
    ("num_levels a string", both(lambda c: edit_json(f"{c}/config.json",
     set_field("config", "num_levels", "2"))), ALL,
     "field 'num_levels': expected an integer, found '2'"),
    ("batch_size a string",
     edit_json("last/config.json", set_field("training", "batch_size", "16")), (RESUME,),
     "field 'batch_size': expected an integer"),
    ("a 100000x100000 image", both(lambda c: edit_json(f"{c}/config.json",
     set_field("config", "image_shape", [1, 100_000, 100_000]))), ALL,
     "this model needs at least .* GB"),
    ("a million hidden channels", both(lambda c: edit_json(f"{c}/config.json",
     set_field("config", "hidden_channels", 1_000_000))), ALL,
     "this model needs at least .* GB"),
    ("metrics line a list", append_line("[1, 2]"), (RESUME,),
     r"metrics.jsonl:\d+: expected an object"),
    ("metrics line without event", append_line('{"step": 1, "epoch": 0}'), (RESUME,),
     r"metrics.jsonl:\d+: field 'event'"),
    ("metrics line not JSON", append_line("{oops"), (RESUME,),
     r"metrics.jsonl:\d+: not a JSON line"),
    ("metrics step a string", append_line('{"event": "train", "step": "3", "epoch": 0}'),
     (RESUME,), "field 'step': expected an integer >= 0"),
    ("weights with a flipped bit", both(lambda c: raw_bytes(f"{c}/model.safetensors", flip_a_bit)),
     ALL, "checkpoint corrupted: .*model.safetensors differs"),
    ("weights with NaN", both(lambda c: edit_tensors(f"{c}/model.safetensors",
     first_weight(float("nan")))), ALL, "NaN or infinite values"),
    ("weights in float16", both(lambda c: edit_tensors(f"{c}/model.safetensors",
     set_weights(lambda t: t.half() if t.is_floating_point() else t))), ALL,
     "float32 or float64 throughout"),
    ("weights as int32", both(lambda c: edit_tensors(f"{c}/model.safetensors",
     set_weights(lambda t: t.int()))), ALL, "float32 or float64 throughout"),
    ("checksums not JSON", both(lambda c: raw_bytes(f"{c}/checksums.json", lambda b: b"{")),
     ALL, "checksums.json: not valid JSON"),
]  # fmt: skip


def command(kind: str, run: Path, data_dir: Path, tmp_path: Path) -> list[str]:
    if kind == RESUME:
        return ["train", "--resume", str(run), "--epochs", "2", "--data-dir", str(data_dir)]
    if kind == EVALUATE:
        return ["evaluate", str(run), "--max-images", "8", "--data-dir", str(data_dir)]
    return ["sample", str(run), "-n", "2", "-o", str(tmp_path / "samples.png")]


@pytest.mark.parametrize(
    ("damage", "kinds", "message"),
    [pytest.param(d, k, m, id=name) for name, d, k, m in CASES],
)
def test_damaged_file_gives_one_clear_line_and_changes_nothing(
    damage, kinds, message, pristine: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    damage(run)
    before = snapshot(run)
    for kind in kinds:
        assert main(command(kind, run, data_dir, tmp_path)) == 2, kind
        err = capsys.readouterr().err.strip()
        assert err.startswith("pixelrnn: error: ") and "\n" not in err, (kind, err)
        assert "Traceback" not in err
        assert re.search(message, err), (kind, err)
        assert snapshot(run) == before, f"{kind} changed the run directory"


def test_float64_weights_load_as_float64(pristine: Path, tmp_path: Path) -> None:
    """Weights are loaded in the dtype they were saved in (float32 or float64)."""
    folder = tmp_path / "m"
    shutil.copytree(pristine / "best", folder)
    to_double = set_weights(lambda t: t.double() if t.is_floating_point() else t)
    edit_tensors("model.safetensors", to_double)(folder)
    model = pixelrnn.load_pretrained(folder)
    assert next(model.parameters()).dtype == torch.float64
