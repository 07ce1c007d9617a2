#!/usr/bin/env bash
# The CPU figures of docs/benchmarks.md: run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")"
out=results
mkdir -p "$out"
# PixelCNN vs a conventional implementation of the same network, system malloc and tcmalloc
python train_throughput.py --preset pixelcnn-mnist --reference --batch-size 32 \
    --steps 40 --repeats 5 --output "$out/train_throughput_pixelcnn.json"
# the recurrent PixelRNNs at the same width (h = 16), as the command line runs them (tcmalloc)
python train_throughput.py --preset row-lstm-mnist diagonal-bilstm-mnist pixelcnn-mnist \
    --allocator tcmalloc --batch-size 32 --steps 8 --repeats 3 \
    --output "$out/train_throughput_pixelrnn.json"
# naive (reference) sampling, 16 images
python sample_time.py --preset pixelcnn-mnist --num-images 16 --output "$out/sample_time.json"
