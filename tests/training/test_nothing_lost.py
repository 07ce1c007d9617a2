"""Nothing lost: checkpoint swaps that survive two kills, what kills leave cleaned up, metrics
appended once, one writer per run directory, divergence stopped before anything is saved, a
full disk and a read-only folder reported in one line with the last checkpoint intact."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pixelrnn.cli import main
from pixelrnn.files import LOCK_NAME, FolderLock, replace_dir, resolve_checkpoint_dir
from pixelrnn.training.run_dir import METRICS_NAME, RunDirectory
from tests.training.test_damaged_files import TINY_RUN, snapshot


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no ``except Exception`` catches it)."""


def _folder_with(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "weights").write_text(text)


def test_checkpoint_swap_survives_two_kills(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "last"
    _folder_with(target, "good")
    real_replace = os.replace
    calls = []

    def replace_then_die(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the second rename: the new folder into place
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(Killed):
        replace_dir(lambda d: (d / "weights").write_text("newer"), target)
    monkeypatch.setattr(os, "replace", real_replace)
    # first kill: between the renames, the good copy is last.old
    assert not target.exists() and (tmp_path / "last.old" / "weights").read_text() == "good"
    assert resolve_checkpoint_dir(target) == tmp_path / "last.old"

    def die_while_building(folder: Path) -> None:
        (folder / "weights").write_text("partial")
        raise Killed

    with pytest.raises(Killed):  # second kill: while the next checkpoint is built
        replace_dir(die_while_building, target)
    assert (resolve_checkpoint_dir(target) / "weights").read_text() == "good"
    replace_dir(lambda d: (d / "weights").write_text("newest"), target)
    assert (target / "weights").read_text() == "newest" and not (tmp_path / "last.old").exists()


@pytest.fixture
def run(tmp_path: Path, data_dir: Path) -> Path:
    run = tmp_path / "run"
    assert main(["train", *TINY_RUN, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    return run


def resume(run: Path, data_dir: Path, *flags: str) -> int:
    return main(["train", "--resume", str(run), "--data-dir", str(data_dir), *flags])


def test_what_kills_left_is_cleaned_at_start(run: Path, data_dir: Path) -> None:
    os.replace(run / "last", run / "last.old")  # killed between the renames
    (run / ".best.abc123").mkdir()  # killed while building best/
    (run / ".best.abc123" / "model.safetensors").write_bytes(bytes(1000))
    (run / ".results.json.xyz.tmp").write_text("{")  # killed while writing a file
    assert resume(run, data_dir, "--epochs", "2") == 0
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]
    assert leftovers == [] and (run / "last").is_dir() and not (run / "last.old").exists()


def test_metrics_are_appended_once_and_truncated_in_place(tmp_path: Path) -> None:
    files = RunDirectory(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    for step in (1, 2, 3):
        files.append_metric({"event": "train", "step": step, "epoch": 0, "loss": 1.0})
    valid = {"event": "valid", "step": 3, "epoch": 1, "nats_per_image": 2.0}
    files.append_metric(valid)
    files.append_metric(valid)  # recomputed after a resume: written once
    assert [r["event"] for r in files.metrics()] == ["train"] * 3 + ["valid"]
    with open(tmp_path / METRICS_NAME, "a") as f:
        f.write('{"event": "train", "step": 4, "epo')  # an append cut short by a kill
    assert len(files.metrics()) == 4
    inode = (tmp_path / METRICS_NAME).stat().st_ino
    files.truncate_metrics(2)
    assert [r["step"] for r in files.metrics()] == [1, 2]
    assert (tmp_path / METRICS_NAME).stat().st_ino == inode  # the same file, cut in place


def test_one_writer_per_run_directory(run: Path, data_dir: Path, capsys) -> None:
    with FolderLock(run):
        assert resume(run, data_dir, "--epochs", "2") == 2
        assert f"in use by pid {os.getpid()}" in capsys.readouterr().err
    # a lock file left by a killed run (no process holds it) is taken over
    (run / LOCK_NAME).write_text("999999\n")
    assert resume(run, data_dir, "--epochs", "2") == 0


def test_a_second_process_is_refused_while_a_run_writes(run: Path, data_dir: Path) -> None:
    """Two processes, as two terminals would run them."""
    with FolderLock(run):
        result = subprocess.run(
            ["python", "-m", "pixelrnn", "train", "--resume", str(run), "--epochs", "2",
             "--data-dir", str(data_dir)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"in use by pid {os.getpid()}" in result.stderr and "Traceback" not in result.stderr


def test_divergence_stops_the_run_and_keeps_the_last_checkpoint(
    run: Path, data_dir: Path, capsys
) -> None:
    last, results = snapshot(run / "last"), (run / "results.json").read_bytes()
    flags = [
        "--epochs",
        "3",
        "--lr",
        "1e6",
        "--clip-grad-norm",
        "none",
        "--checkpoint-every",
        "100",
    ]
    assert resume(run, data_dir, *flags) == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and "Lower the learning rate" in err
    assert snapshot(run / "last") == last and (run / "results.json").read_bytes() == results
    assert "NaN" not in (run / METRICS_NAME).read_text()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def mount_point(tmp_path: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    point = tmp_path / "mnt"
    point.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)):
        pytest.skip("mounting a tmpfs is not permitted here")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_full_disk_is_one_line_and_the_checkpoint_survives(
    mount_point: Path, data_dir: Path, capsys
) -> None:
    run = mount_point / "run"
    assert main(["train", *TINY_RUN, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    last = snapshot(run / "last")
    filler = mount_point / "filler"
    with open(filler, "wb") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(bytes(64 * 1024))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    assert resume(run, data_dir, "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert snapshot(run / "last") == last


def test_read_only_run_directory(mount_point: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    run = mount_point / "run"
    assert main(["train", *TINY_RUN, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    before = snapshot(run)
    assert _mount("-o", "remount,ro", str(mount_point))
    assert resume(run, data_dir, "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err
    out = tmp_path / "s.png"  # reading commands still work
    assert main(["sample", str(run), "-n", "2", "-o", str(out)]) == 0
    assert snapshot(run) == before
