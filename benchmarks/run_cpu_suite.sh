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
# Gated PixelCNN: the preset beside pixelcnn-mnist, and the same size as a conventional
# implementation (5 layers x 64 channels, 256 levels, 10 classes), fp32 and bf16 autocast
python train_throughput.py --preset gated-pixelcnn-mnist pixelcnn-mnist gated-5x64-class \
    reference-gated-5x64-class --allocator tcmalloc --precision both --batch-size 32 \
    --steps 10 --repeats 3 --output "$out/train_throughput_gated.json"
# every preset that trains on this CPU: training and evaluation images/s, memory, FLOP/s
python train_throughput.py --preset pixelcnn-mnist gated-pixelcnn-mnist row-lstm-mnist \
    diagonal-bilstm-mnist --allocator tcmalloc --batch-size 32 --steps 8 --repeats 3 \
    --output "$out/presets.json"
# data-parallel scaling, 1 -> 2 processes
python ddp_scaling.py --preset pixelcnn-mnist --steps 200 --output "$out/ddp_scaling.json"
# sampling, naive vs cached, batch 1 / 16 / 64 (naive at batch 64 timed over 2 rows, scaled)
python sample_time.py --preset pixelcnn-mnist gated-pixelcnn-mnist row-lstm-mnist \
    diagonal-bilstm-mnist pixelcnnpp-1x32-mix5 multiscale-pixelcnn-mnist --batch-size 1 16 \
    --output "$out/sample_time.json"
python sample_time.py --preset pixelcnn-mnist gated-pixelcnn-mnist row-lstm-mnist \
    diagonal-bilstm-mnist pixelcnnpp-1x32-mix5 multiscale-pixelcnn-mnist --batch-size 64 \
    --naive-steps 56 --output "$out/sample_time_b64.json"
# one draw of each output distribution at a pixel (the logistic mixture compiled vs PyTorch)
python draw_time.py --rounds 5 --output "$out/draw_time.json"
