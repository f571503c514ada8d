#!/usr/bin/python3
"""GFLOP/s of each matmul shape of one forward of the 124M decoder (or another preset of decoder.py), fp32 and bf16:
F.linear(x [B*T, in], W [out, in]) for every linear layer and the LM head, and attention's two batched matmuls.
The C# counterpart: `dotnet run -c Release --project bench/GenRecal.Bench -- models --shapes`. Same environment as
decoder.py (LD_LIBRARY_PATH to OpenBLAS, /usr/bin/python3)."""
import argparse
import time

import torch
import torch.nn.functional as F

from decoder import PRESETS


def shapes(c):
    bt, h, i = c["batch"] * c["seq"], c["hidden"], c["intermediate"]
    q, kv = c["heads"] * c["head_dim"], c["kv_heads"] * c["head_dim"]
    return [("q_proj", bt, h, q), ("k_proj", bt, h, kv), ("o_proj", bt, q, h), ("gate/up", bt, h, i),
            ("down", bt, i, h), ("lm_head", bt, h, c["vocab"])]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="124m", choices=sorted(PRESETS))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    c = PRESETS[a.preset]
    for dtype in (torch.float32, torch.bfloat16):
        def bench(name, f, flops):
            f()
            best = 0
            for _ in range(3):
                t0 = time.perf_counter()
                f()
                best = max(best, flops / (time.perf_counter() - t0) / 1e9)
            print(f"{str(dtype)[6:]:9} {name:26} {best:7.1f} GFLOP/s")
        n = 2048
        s = torch.randn(n, n, dtype=dtype)
        bench(f"square {n}", lambda: s @ s, 2 * n ** 3)
        for name, m, k, o in shapes(c):
            x, w, g = torch.randn(m, k, dtype=dtype), torch.randn(o, k, dtype=dtype), torch.randn(m, o, dtype=dtype)
            bench(f"{name} {m}x{k}x{o}", lambda: F.linear(x, w), 2 * m * k * o)
            bench(f"  grad x = g.W", lambda: g.matmul(w), 2 * m * k * o)
            bench(f"  grad W = g^T.x", lambda: g.t().matmul(x), 2 * m * k * o)
            if name == "q_proj":
                bias, x3 = torch.randn(o, dtype=dtype), x.view(c["batch"], c["seq"], k)
                bench("  with bias", lambda: F.linear(x, w, bias), 2 * m * k * o)
                bench("  with bias, [B, T, in] input", lambda: F.linear(x3, w, bias), 2 * m * k * o)
        bh, t, d = c["batch"] * c["heads"], c["seq"], c["head_dim"]
        q, kt, pr = torch.randn(bh, t, d, dtype=dtype), torch.randn(bh, d, t, dtype=dtype), torch.randn(bh, t, t, dtype=dtype)
        bench(f"q.k^T {bh}x{t}x{d}x{t}", lambda: q @ kt, 2 * bh * t * t * d)
        bench(f"p.v {bh}x{t}x{t}x{d}", lambda: pr @ q, 2 * bh * t * t * d)


if __name__ == "__main__":
    main()
