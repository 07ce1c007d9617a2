"""The demo's JSON API without a browser (Starlette's test client): what each panel gets back,
the limits, clear messages for bad input, one request at a time per model."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

import pixelrnn
from pixelrnn.cli.demo import local_runs
from pixelrnn.demo import DemoModels, create_app
from pixelrnn.demo import app as app_module
from pixelrnn.demo.service import MAX_UPLOAD_BYTES
from tests.helpers import tiny_model

SIZE = 8


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny binary model and a tiny class-conditional one, saved as a user's runs are."""
    root = tmp_path_factory.mktemp("demo-models")
    plain, conditional = root / "plain", root / "conditional"
    pixelrnn.save_pretrained(tiny_model(1, 2, size=SIZE, model="gated_pixelcnn"), plain)
    pixelrnn.save_pretrained(
        tiny_model(1, 2, size=SIZE, model="gated_pixelcnn", num_classes=3), conditional
    )
    return {"plain": plain, "conditional": conditional}


@pytest.fixture(scope="module")
def client(folders) -> TestClient:
    models = DemoModels([str(folders["plain"]), str(folders["conditional"])], torch.device("cpu"))
    return TestClient(create_app(models, "plain"))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(url: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        return np.asarray(img.convert("L"))


def _events(response) -> list[dict]:
    return [json.loads(b[6:]) for b in response.text.split("\n\n") if b.startswith("data: ")]


def test_page_and_picker(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="sample-button"' in page.text
    assert client.get("/static/demo.js").status_code == 200
    listing = client.get("/api/models").json()
    names = [m["name"] for m in listing["models"]]
    assert names[:2] == ["plain", "conditional"] and listing["default"] == "plain"
    assert set(pixelrnn.models.pretrained.available_pretrained()) <= set(names)
    info = client.get("/api/model/conditional").json()
    assert (info["height"], info["num_levels"], info["num_classes"]) == (SIZE, 2, 3)


def test_sample_streams_every_row_then_the_grid(client: TestClient) -> None:
    events = _events(client.post("/api/sample", json={"model": "plain", "n": 4, "seed": 3}))
    kinds = [e["type"] for e in events]
    assert kinds == ["started"] + ["row"] * SIZE + ["done"]
    assert [e["row"] for e in events if e["type"] == "row"] == list(range(1, SIZE + 1))
    final = _pixels(events[-1]["grid"])
    assert set(np.unique(final).tolist()) <= {0, 128, 255}  # images and grey padding
    again = _events(client.post("/api/sample", json={"model": "plain", "n": 4, "seed": 3}))
    assert again[-1]["grid"] == events[-1]["grid"]  # the seed fixes the images


def test_complete_keeps_the_known_pixels(client: TestClient) -> None:
    g = np.random.default_rng(0)
    image = (g.random((SIZE, SIZE)) < 0.4).astype(np.uint8) * 255
    erase = np.zeros((SIZE, SIZE), np.uint8)
    erase[5:, 2:7] = 1
    form = {"model": "plain", "n": "3", "erase": "".join(map(str, erase.ravel()))}
    body = client.post("/api/complete", data=form, files={"image": ("x.png", _png(image))}).json()
    assert np.array_equal(_pixels(body["input"]) == 128, erase == 1)
    assert len(body["completions"]) == 3
    for url in body["completions"]:
        assert np.array_equal(_pixels(url)[erase == 0], image[erase == 0])
    # an occlusion instead of brush strokes
    form = {"model": "plain", "n": "1", "occlusion": "right-half"}
    body = client.post("/api/complete", data=form, files={"image": ("x.png", _png(image))}).json()
    assert np.array_equal(_pixels(body["completions"][0])[:, : SIZE // 2], image[:, : SIZE // 2])


def test_score_is_the_models_nll(client: TestClient, folders) -> None:
    image = np.zeros((SIZE, SIZE), np.uint8)
    image[2:6, 3] = 255
    body = client.post(
        "/api/score",
        data={"model": "conditional", "label": "2"},
        files={"image": ("x.png", _png(image))},
    ).json()
    model = pixelrnn.load_pretrained(folders["conditional"]).eval()
    x = torch.from_numpy((image > 0).astype(np.int64))[None, None]
    with torch.no_grad():
        expected = -model.log_prob(x, y=torch.tensor([2])).item()
    assert body["nats"] == pytest.approx(expected, rel=1e-5)
    assert body["bits_per_dim"] == pytest.approx(expected / (SIZE * SIZE * np.log(2)), rel=1e-5)
    assert _pixels(body["heatmap"]).shape == (SIZE * 8, SIZE * 8)


@pytest.mark.parametrize(
    ("form", "files", "message"),
    [
        ({"model": "plain"}, {"image": ("x.png", b"no picture")}, "not an image"),
        ({"model": "plain"}, {"image": ("x.png", _png(np.zeros((9, 8), np.uint8)))}, "8x9"),
        ({"model": "plain"}, {}, "upload an image or pick a test image"),
        ({"model": "nope"}, {}, "no model called 'nope'"),
        (
            {"model": "plain", "n": "99"},
            {"image": ("x.png", _png(np.zeros((8, 8), np.uint8)))},
            "1..8",
        ),
        (
            {"model": "plain", "erase": "01"},
            {"image": ("x.png", _png(np.zeros((8, 8), np.uint8)))},
            "64 characters",
        ),
        (
            {"model": "conditional"},
            {"image": ("x.png", _png(np.zeros((8, 8), np.uint8)))},
            "class label in 0..2",
        ),
        (
            {"model": "plain", "label": "1"},
            {"image": ("x.png", _png(np.zeros((8, 8), np.uint8)))},
            "takes no class label",
        ),
    ],
)
def test_bad_requests_get_a_clear_message(client: TestClient, form, files, message) -> None:
    response = client.post("/api/complete", data=form, files=files)
    assert response.status_code == 400 and message in response.json()["error"]
    assert client.get("/api/models").status_code == 200  # still serving


def test_limits(client: TestClient) -> None:
    too_many = client.post("/api/sample", json={"model": "plain", "n": 65})
    assert too_many.status_code == 400 and "1..64" in too_many.json()["error"]
    cold = client.post("/api/sample", json={"model": "plain", "temperature": 0})
    assert "temperature must lie in" in cold.json()["error"]
    big = client.post(
        "/api/score",
        data={"model": "plain"},
        files={"image": ("x.png", bytes(MAX_UPLOAD_BYTES + 200_000))},
    )
    assert big.status_code == 400 and "the demo takes files up to" in big.json()["error"]
    assert (
        client.post(
            "/api/sample", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


def test_one_request_at_a_time_per_model(client: TestClient, monkeypatch) -> None:
    running, most = [0], [0]
    guard = threading.Lock()

    def slow_generation(model, x, known, **kwargs):
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with guard:
            running[0] -= 1
        return x

    monkeypatch.setattr(app_module, "generation", slow_generation)
    threads = [
        threading.Thread(
            target=client.post, args=("/api/sample",), kwargs={"json": {"model": "plain", "n": 1}}
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_local_runs_are_found(folders, tmp_path) -> None:
    (tmp_path / "not-a-run").mkdir()
    run = tmp_path / "run-a"
    pixelrnn.save_pretrained(tiny_model(1, 2, size=SIZE), run / "best")
    assert local_runs(tmp_path) == [str(run)]
    assert local_runs(tmp_path / "missing") == []
