"""``python -m pixelrnn`` runs the command line (also what ``torchrun -m pixelrnn`` needs)."""

from pixelrnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
