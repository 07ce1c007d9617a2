"""The demo's web app: one page (``static/``) and a small JSON API over
:mod:`pixelrnn.demo.service`, as a Starlette ASGI app served by uvicorn on loopback.

API (every error is ``{"error": message}`` with status 400, 404 or 413; the server goes on):

* ``GET /api/models`` — the picker: ``{"models": [{name, description}], "default": name}``;
* ``GET /api/model/{name}`` — shape, levels, classes of a model (loads it);
* ``POST /api/sample`` (JSON: model, n, temperature, seed, label) — a server-sent event stream:
  ``started``, one ``row`` event per finished image row with the grid so far, then ``done``
  (or ``error``);
* ``GET /api/test-image?model=&index=`` — a test image of the model's data set;
* ``POST /api/upload`` (form: model, image) — the upload as the model sees it, or why not;
* ``POST /api/complete`` (form: model, image or test_index, erase or occlusion, n, seed,
  label) — the masked input and ``n`` completions;
* ``POST /api/score`` (form: model, image or test_index, label) — nats, bits/dim and the
  per-pixel NLL heat map.

Images travel as PNG data URLs at the model's own size (the page scales them up).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pixelrnn.demo.service import (
    MAX_COMPLETIONS,
    MAX_SAMPLES,
    MAX_UPLOAD_BYTES,
    DemoError,
    DemoModels,
    check_count,
    check_label,
    check_temperature,
    generation,
    grid_picture,
    heat_map,
    image_picture,
    occlusion_known,
    parse_erase_mask,
    png_data_url,
    read_upload,
    score,
)

STATIC = resources.files("pixelrnn.demo") / "static"
Handler = Callable[[Request], Awaitable[Response]]


def _refusing(handler: Handler) -> Handler:
    """Turn a refused request into ``{"error": …}``: 400 for bad input, 404 for what is not
    there; the server keeps serving."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except (DemoError, ValueError, TypeError, KeyError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            return JSONResponse({"error": str(message)}, status_code=400)
        except FileNotFoundError as e:
            return JSONResponse({"error": str(e)}, status_code=404)

    return wrapped


def _number(value: Any, kind: type, what: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise DemoError(f"{what} must be a number, got {value!r}") from None


def _optional_label(value: Any) -> int | None:
    return None if value in (None, "", "none") else _number(value, int, "label")


def create_app(models: DemoModels, default: str) -> Starlette:
    """The ASGI app over ``models``; ``default`` is the picker's first choice."""

    async def in_thread(function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function)

    async def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text())

    async def list_models(request: Request) -> Response:
        choices = [{"name": c.name, "description": c.description} for c in models.choices.values()]
        return JSONResponse({"models": choices, "default": default})

    async def describe(request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(await in_thread(lambda: models.describe(name)))

    async def sample(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise DemoError("the request is not JSON") from None
        name = str(body.get("model", default))
        model = await in_thread(lambda: models.get(name))
        n = _number(body.get("n", 16), int, "the number of images")
        check_count(n, MAX_SAMPLES, "the number of images")
        temperature = _number(body.get("temperature", 1.0), float, "temperature")
        check_temperature(temperature)
        seed = _number(body.get("seed", 0), int, "seed")
        label = check_label(model, _optional_label(body.get("label")))
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def emit(event: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def on_row(row: int, partial: torch.Tensor) -> None:
            if partial.shape[1:] == model.image_shape:  # not a Multi-Scale model's small stage
                grid = png_data_url(grid_picture(partial.cpu(), model.num_levels))
                emit({"type": "row", "row": row + 1, "rows": model.image_shape[1], "grid": grid})

        def work() -> None:
            try:
                with models.lock(name):
                    emit({"type": "started"})
                    start = time.perf_counter()
                    x = torch.zeros((n, *model.image_shape), dtype=torch.long)
                    known = torch.zeros_like(x, dtype=torch.bool)
                    out = generation(
                        model,
                        x,
                        known,
                        seed=seed,
                        temperature=temperature,
                        label=label,
                        on_row=on_row,
                    )
                    emit(
                        {
                            "type": "done",
                            "grid": png_data_url(grid_picture(out, model.num_levels)),
                            "seconds": round(time.perf_counter() - start, 2),
                        }
                    )
            except Exception as e:
                emit({"type": "error", "message": str(e)})
            finally:
                emit(None)

        async def stream() -> AsyncIterator[str]:
            future = loop.run_in_executor(None, work)
            while (event := await events.get()) is not None:
                yield f"data: {json.dumps(event)}\n\n"
            await future

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def read_form(request: Request) -> FormData:
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_UPLOAD_BYTES + 100_000:
            raise DemoError(
                f"the request is {size:,} bytes; the demo takes files up to "
                f"{MAX_UPLOAD_BYTES:,} bytes"
            )
        return await request.form()

    async def image_of(form: FormData, name: str) -> tuple[torch.Tensor, int | None]:
        """The form's image: an upload, else a test image; and a test image's label."""
        model = await in_thread(lambda: models.get(name))
        upload = form.get("image")
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            return await in_thread(lambda: read_upload(model, data)), None
        index = form.get("test_index")
        if index in (None, ""):
            raise DemoError("upload an image or pick a test image")
        image, label = await in_thread(
            lambda: models.test_image(name, _number(index, int, "test image"))
        )
        return image, None if label is None else int(label)

    async def test_image(request: Request) -> Response:
        name = request.query_params.get("model", default)
        index = _number(request.query_params.get("index", 0), int, "test image")
        image, label = await in_thread(lambda: models.test_image(name, index))
        model = models.get(name)
        return JSONResponse(
            {
                "image": png_data_url(image_picture(image, model.num_levels)),
                "label": None if label is None else int(label),
            }
        )

    async def upload(request: Request) -> Response:
        form = await read_form(request)
        name = str(form.get("model", default))
        image, _ = await image_of(form, name)
        model = models.get(name)
        return JSONResponse({"image": png_data_url(image_picture(image, model.num_levels))})

    async def complete(request: Request) -> Response:
        form = await read_form(request)
        name = str(form.get("model", default))
        image, test_label = await image_of(form, name)
        model = models.get(name)
        erase = str(form.get("erase") or "")
        known = (
            parse_erase_mask(model, erase)
            if erase
            else occlusion_known(model, str(form.get("occlusion") or "bottom-half"))
        )
        n = _number(form.get("n", 4), int, "the number of completions")
        check_count(n, MAX_COMPLETIONS, "the number of completions")
        seed = _number(form.get("seed", 0), int, "seed")
        label_value = _optional_label(form.get("label"))
        label = check_label(model, label_value if label_value is not None else test_label)
        x = image.expand(n, *image.shape).clone()
        mask = known.expand(n, *known.shape).clone()

        def work() -> torch.Tensor:
            with models.lock(name):
                return generation(model, x, mask, seed=seed, label=label)

        out = await in_thread(work)
        k = model.num_levels
        return JSONResponse(
            {
                "input": png_data_url(image_picture(image, k, hidden=~known)),
                "completions": [png_data_url(image_picture(c, k)) for c in out],
            }
        )

    async def score_image(request: Request) -> Response:
        form = await read_form(request)
        name = str(form.get("model", default))
        image, test_label = await image_of(form, name)
        model = models.get(name)
        label_value = _optional_label(form.get("label"))
        label = check_label(model, label_value if label_value is not None else test_label)

        def work() -> tuple[float, float, torch.Tensor]:
            with models.lock(name):
                return score(model, image, label)

        nats, bpd, per_pixel = await in_thread(work)
        return JSONResponse(
            {"nats": nats, "bits_per_dim": bpd, "heatmap": png_data_url(heat_map(per_pixel))}
        )

    routes = [
        Route("/", page),
        Route("/api/models", _refusing(list_models)),
        Route("/api/model/{name}", _refusing(describe)),
        Route("/api/sample", _refusing(sample), methods=["POST"]),
        Route("/api/test-image", _refusing(test_image)),
        Route("/api/upload", _refusing(upload), methods=["POST"]),
        Route("/api/complete", _refusing(complete), methods=["POST"]),
        Route("/api/score", _refusing(score_image), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return Starlette(routes=routes)
