#!/usr/bin/python3
"""The decoder of GenRecal.NET (src/GenRecal/Modules) and its training step, in plain PyTorch, for speed comparisons.

Same architecture, op for op, as the C# model: token embedding, pre-norm decoder layers (RMSNorm computed in float32
and cast back; rotary embedding with cos/sin computed in float32 and cast to the activations' dtype, rotate_half
layout; grouped-query attention with optional q/k/v bias, K/V repeated with repeat_interleave, eager attention
q @ k^T / sqrt(d) + an additive mask in the activations' dtype (its minimum where blocked), softmax in float32 and cast back to q's
dtype; SwiGLU MLP down(silu(gate(x)) * up(x)) without biases), final RMSNorm, LM head (tied to the embedding or not).
The training step is the C# bench's: zero_grad, logits, cross-entropy over every position, backward, AdamW step.

Run with Debian's python3-torch (1.13), /usr/bin/python3, and OpenBLAS for its BLAS (bench/README.md):
  LD_LIBRARY_PATH=/opt/openblas-bench/root/usr/lib/x86_64-linux-gnu/openblas-openmp \
  /usr/bin/python3 bench/pytorch/decoder.py --preset 124m --threads 2 --dtype fp32
Prints one JSON line (tokens/s of the forward and of the training step, the FLOP count used, threads, BLAS).
--profile prints torch.autograd.profiler's per-op table of one training step instead.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # GPT-2-small-sized Qwen2-style decoder: 124.0M parameters (SwiGLU intermediate 2048 = 8/3 * 768, the LLaMA
    # sizing of GPT-2's 4 * 768 two-matrix MLP; gpt2's vocabulary, tied embeddings, q/k/v bias)
    "124m": dict(vocab=50257, hidden=768, intermediate=2048, layers=12, heads=12, kv_heads=12, head_dim=64,
                 bias=True, tied=True, theta=10000.0, batch=4, seq=256),
    # src/GenRecal/Demo/DemoPreset.cs, with the bench's vocabulary of 400 and its batch of 16 x 64
    "teacher": dict(vocab=400, hidden=96, intermediate=256, layers=4, heads=4, kv_heads=2, head_dim=24,
                    bias=True, tied=False, theta=10000.0, batch=16, seq=64),
    "student": dict(vocab=400, hidden=48, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=12,
                    bias=False, tied=True, theta=500000.0, batch=16, seq=64),
}


class RMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(dtype)


def rotary(positions, head_dim, theta, dtype):
    inv_freq = (1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)).to(positions.device, torch.float32)
    freqs = positions.to(torch.float32).unsqueeze(-1) * inv_freq      # [B, T, D/2]
    emb = torch.cat([freqs, freqs], -1).unsqueeze(1)                  # [B, 1, T, D]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def causal_mask(batch, t, dtype, device="cpu"):
    """In the activations' dtype with that dtype's minimum where blocked, as transformers (and, since this bench's
    commit, src/GenRecal/Modules/AttentionMask.cs) build it; --fp32-mask gives the earlier float32 mask, which turns
    bf16 scores into float32 ones."""
    qi = torch.arange(t, device=device).view(t, 1)
    kj = torch.arange(t, device=device).view(1, t)
    allowed = kj.le(qi).view(1, 1, t, t).expand(batch, 1, t, t)
    return torch.zeros(batch, 1, t, t, dtype=dtype, device=device).masked_fill(allowed.logical_not(), torch.finfo(dtype).min)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c["heads"], c["kv_heads"], c["head_dim"]
        h, hd = c["hidden"], c["head_dim"]
        self.q_proj = nn.Linear(h, self.heads * hd, bias=c["bias"])
        self.k_proj = nn.Linear(h, self.kv_heads * hd, bias=c["bias"])
        self.v_proj = nn.Linear(h, self.kv_heads * hd, bias=c["bias"])
        self.o_proj = nn.Linear(self.heads * hd, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        groups = self.heads // self.kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, 1)
            v = v.repeat_interleave(groups, 1)
        scores = q.matmul(k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = scores.softmax(-1, dtype=torch.float32).to(q.dtype)
        o = probs.matmul(v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.o_proj(o)


class SwiGluMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.up_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.down_proj = nn.Linear(c["intermediate"], c["hidden"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden"])
        self.mlp = SwiGluMlp(c)

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class CausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"])
        self.lm_head = None if c["tied"] else nn.Linear(c["hidden"], c["vocab"], bias=False)

    def forward(self, ids):
        b, t = ids.shape
        h = self.embed_tokens(ids)
        positions = torch.arange(t, device=ids.device).unsqueeze(0).expand(b, t)
        cos, sin = rotary(positions, self.c["head_dim"], self.c["theta"], h.dtype)
        mask = causal_mask(b, t, torch.float32 if self.c.get("fp32_mask") else h.dtype, ids.device)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        h = self.norm(h)
        return F.linear(h, self.embed_tokens.weight) if self.lm_head is None else self.lm_head(h)


def flops_per_token(c):
    """Model FLOPs of one token's forward, counting every matmul exactly (2 per multiply-add): the linear layers,
    the LM head, and attention's q.k^T and probs.v over all T keys (the eager path computes the full square; the
    causal half is masked, not skipped). Norms, rotary, softmax, SiLU and the embedding lookup are not counted.
    A training step is 3x this (backward = 2x forward), the usual 6N + attention convention."""
    h, i, hd, t = c["hidden"], c["intermediate"], c["head_dim"], c["seq"]
    qo = 2 * 2 * h * c["heads"] * hd
    kv = 2 * 2 * h * c["kv_heads"] * hd
    mlp = 3 * 2 * h * i
    attn = 2 * 2 * t * c["heads"] * hd
    return c["layers"] * (qo + kv + mlp + attn) + 2 * h * c["vocab"]


def blas_name():
    try:
        with open(f"/proc/{os.getpid()}/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
        # the directory too: Debian names the pthread and the OpenMP builds' library alike (libopenblasp-r0.3.21.so)
        return ",".join(sorted("/".join(l.split("/")[-2:]) for l in libs if "openblas" in l.lower() or "libblas" in l)) or "none"
    except OSError:
        return "?"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="124m", choices=sorted(PRESETS))
    for key in ("vocab", "hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim", "batch", "seq"):
        p.add_argument("--" + key.replace("_", "-"), type=int)
    p.add_argument("--bias", type=int, choices=(0, 1))
    p.add_argument("--tied", type=int, choices=(0, 1))
    p.add_argument("--theta", type=float)
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "mixed"),
                   help="mixed: a float32 model under torch.autocast(bfloat16), the loss in float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, or cuda for tools/cuda-probe's GPU comparison")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed training steps (forward passes: the same count)")
    p.add_argument("--skip-forward", action="store_true")
    p.add_argument("--fp32-mask", action="store_true", help="the float32 mask of GenRecal.NET before the bf16 mask")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--serve", action="store_true",
                   help="warm up, print a JSON line, then measure once per 'run' line on stdin (the C# bench's A/B)")
    a = p.parse_args()
    c = dict(PRESETS[a.preset])
    for key in list(c):
        v = getattr(a, key, None)
        if v is not None:
            c[key] = bool(v) if key in ("bias", "tied") else v
    c["fp32_mask"] = a.fp32_mask
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = CausalLM(c).to(a.device)
    if a.dtype == "bf16":
        model = model.to(torch.bfloat16)
    ids = torch.randint(0, c["vocab"], (c["batch"], c["seq"])).to(a.device)
    targets = torch.randint(0, c["vocab"], (c["batch"], c["seq"])).to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    tokens = ids.numel()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    autocast = (lambda: torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16)) if a.dtype == "mixed" \
        else contextlib.nullcontext

    def train_step():
        opt.zero_grad()
        with autocast():
            logits = model(ids)
        if a.dtype == "mixed":
            logits = logits.float()
        loss = F.cross_entropy(logits.view(-1, c["vocab"]), targets.view(-1))
        loss.backward()
        opt.step()

    if a.profile:
        for _ in range(a.warmup):
            train_step()
        with torch.autograd.profiler.profile() as prof:
            train_step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        return

    def measure():
        fwd = None
        if not a.skip_forward:
            with torch.no_grad():
                sync()
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    with autocast():
                        model(ids)
                sync()
                fwd = a.steps * tokens / (time.perf_counter() - t0)
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step()
        sync()
        train = a.steps * tokens / (time.perf_counter() - t0)
        return fwd, train

    def report(**extra):
        print(json.dumps(dict(
            torch=torch.__version__, threads=torch.get_num_threads(), blas=blas_name(), dtype=a.dtype,
            params=sum(p.numel() for p in model.parameters()), flops_per_token=flops_per_token(c), config=c, **extra)),
            flush=True)

    with torch.no_grad(), autocast():
        for _ in range(0 if a.skip_forward else a.warmup):
            model(ids)
    for _ in range(a.warmup):
        train_step()
    if a.serve:
        report(ready=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            fwd, train = measure()
            report(forward_tok_s=fwd, train_tok_s=train)
        return
    fwd, train = measure()
    report(forward_tok_s=fwd, train_tok_s=train)

if __name__ == "__main__":
    sys.exit(main())
