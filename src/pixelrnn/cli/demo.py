"""``pixelrnn demo``: serve the demo page on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from pixelrnn.demo import DemoModels, create_app
from pixelrnn.device import resolve_device
from pixelrnn.models import WEIGHTS_NAME
from pixelrnn.models.pretrained import available_pretrained

# the first model of the picker when none is named: its sampler needs no compiled kernel
DEFAULT_MODEL = "diagonal-bilstm-mnist"


def local_runs(root: Path) -> list[str]:
    """The run directories and saved models directly under ``root`` (sorted by name)."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if any((folder / sub / WEIGHTS_NAME).is_file() for sub in ("", "best", "last")):
            found.append(str(folder))
    return found


def cmd_demo(args: argparse.Namespace) -> int:
    sources = list(args.models) + ([args.pretrained] if args.pretrained else [])
    sources += [run for run in local_runs(Path(args.runs)) if run not in sources]
    models = DemoModels(sources, resolve_device(args.device), args.data_dir)
    default = args.pretrained or (next(iter(models.choices)) if args.models else DEFAULT_MODEL)
    if default not in models.choices:
        default = next(iter(models.choices))
    app = create_app(models, default)
    print(f"pixelrnn demo on http://{args.host}:{args.port}/ (model {default}; Ctrl-C stops)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: serving on {args.host}, reachable from other machines")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` subcommand."""
    p = sub.add_parser("demo", help="a local web page to sample, complete and score images")
    p.add_argument(
        "models",
        nargs="*",
        metavar="RUN_DIR",
        help="run directories or saved models to offer first (the pretrained ones follow)",
    )
    p.add_argument(
        "--pretrained", choices=available_pretrained(), help="the pretrained model to open with"
    )
    p.add_argument(
        "--runs", default="runs", help="offer every run directory in this folder (default: runs)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--data-dir", help="data root for test images (default: $PIXELRNN_DATA)")
    p.set_defaults(func=cmd_demo)
