#!/usr/bin/env python3
"""The same training step as benches/train_step.rs in PyTorch (eager, CPU or CUDA; float32,
TF32 matmuls or bf16 autocast).

Model: t5 (one bias per offset) and t5 + URPE, post-norm, GELU, FFN 4d, position-id task
(token input, class output), Adam, for shapes A/B/C. Prints median ms per step and a line
`RESULT shape model ms` per case for the Rust benchmark to read.

Usage: python3 scripts/torch_bench.py [--threads 2] [--device cpu] [--shapes A,B,C] [--precision fp32]
       python3 scripts/torch_bench.py --device cuda --shapes paper --precision tf32   # on the GPU host
       python3 scripts/torch_bench.py --device cuda --shapes paper --precision bf16   # autocast
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name, n, d, heads, layers, batch, vocabulary (as src/bench.rs)
SHAPES = [
    ("A", 16, 32, 4, 2, 64, 16),
    ("B", 32, 64, 4, 4, 32, 16),
    ("C", 128, 64, 4, 3, 32, 16),
    ("paper", 128, 768, 12, 3, 128, 1000),
]


class Layer(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x, bias, gate):
        b, n, d = x.shape
        h, dh = self.h, d // self.h
        split = lambda t: t.view(b, n, h, dh).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
        a = torch.softmax(s, dim=-1)
        if gate is not None:
            a = a * gate
        out = (a @ v).transpose(1, 2).reshape(b, n, d)
        x = self.norm1(x + self.o(out))
        return self.norm2(x + self.down(F.gelu(self.up(x))))


class Model(nn.Module):
    def __init__(self, n, d, h, layers, urpe, vocab):
        super().__init__()
        self.n = n
        self.embed = nn.Embedding(vocab, d)
        self.t5 = nn.Parameter(torch.zeros(h, 2 * n - 1))
        self.c = nn.Parameter(torch.ones(h, 2 * n - 1)) if urpe else None
        self.layers = nn.ModuleList(Layer(d, h) for _ in range(layers))
        self.head = nn.Linear(d, n)
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        self.register_buffer("off", j - i + n - 1)

    def forward(self, tokens):
        x = self.embed(tokens)
        bias = self.t5[:, self.off][None]
        gate = self.c[:, self.off][None] if self.c is not None else None
        for layer in self.layers:
            x = layer(x, bias, gate)
        return self.head(x)


def bench(n, d, h, layers, batch, vocab, urpe, device, bf16):
    model = Model(n, d, h, layers, urpe, vocab).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n).repeat(batch, 1).to(device)

    def step():
        tokens = torch.randint(0, vocab, (batch, n), generator=gen).to(device)
        # bf16: autocast's products in bf16, softmax, layer norm and the loss in f32
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            logits = model(tokens)
        loss = F.cross_entropy(logits.float().reshape(-1, n), labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    reps = 3 if n >= 128 else 10
    for _ in range(reps):
        step()
    times = []
    for _ in range(15):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / reps)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes", default="A,B,C", help="comma-separated: A, B, C, paper")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                        help="fp32; tf32 (TF32 matrix multiplies, CUDA); bf16 (autocast)")
    parser.add_argument("--tf32", action="store_true", help="same as --precision tf32")
    args = parser.parse_args()
    precision = "tf32" if args.tf32 else args.precision
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    wanted = args.shapes.split(",")
    label = {"fp32": "float32", "tf32": "TF32 matmuls", "bf16": "bf16 autocast"}[precision]
    print(f"PyTorch {torch.__version__}, {args.threads} threads, {args.device}, {label}")
    for name, n, d, h, layers, batch, vocab in SHAPES:
        if name not in wanted:
            continue
        for urpe in (False, True):
            ms = bench(n, d, h, layers, batch, vocab, urpe, args.device, precision == "bf16")
            print(f"RESULT {name} {'urpe' if urpe else 't5'} {ms:.3f}")


if __name__ == "__main__":
    main()
