"""Small tensor building blocks and the Qwen2/Llama-style decoder-layer stack.

The three references' language models (InternVL's Qwen2/Llama `language_model`, the -hf Qwen2 text model and
the Qwen2-VL / Qwen2.5-VL text model) run the same decoder layer, from transformers' modeling_qwen2.py /
modeling_llama.py / modeling_qwen2_vl.py: RMSNorm in float32, q/k/v projections, rotate-half RoPE with the
caller's cos/sin, a KV cache, GQA via repeat_kv, eager attention (scale head_dim^-0.5, causal mask filled
with finfo(float32).min, float32 softmax), o_proj, RMSNorm, SiLU-gated MLP.  What differs between the
families -- config handling, how cos/sin are computed (default / dynamic-NTK / M-RoPE), weight-name
prefixes, the final norm and the (tied or untied) lm_head -- stays in each family's *_ref.py.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    # Qwen2RMSNorm / LlamaRMSNorm / InternRMSNorm / InternVLVisionRMSNorm (one formula):
    # float32 variance, weight * x.to(input_dtype)
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return w * h.to(input_dtype)


def layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def linear(x, w, b=None):
    return F.linear(x, w, b)


def gelu(x):
    # transformers ACT2FN["gelu"] (GELUActivation) and nn.GELU(): exact erf GELU
    return F.gelu(x)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


Past = List[Tuple[torch.Tensor, torch.Tensor]]


def decoder_layers(h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past: Optional[Past],
                   W: Dict[str, torch.Tensor], layer_prefix: str, n_layers: int, n_heads: int, n_kv: int,
                   head_dim: int, eps: float, qkv_bias: bool = True, o_bias: bool = False,
                   mlp_bias: bool = False) -> Tuple[torch.Tensor, Past]:
    """Run the decoder layers of a Qwen2/Llama-style LM on one sequence (batch 1).

    h: inputs_embeds [T, hidden]; cos/sin: [T, head_dim] (already laid out for rotate_half);
    past: per layer (k, v) with shape [n_kv, P, head_dim], or None.  Weights are W[f"{layer_prefix}{i}.{name}"]
    (e.g. layer_prefix "model.layers.").  Biases are read only when the flag is set.
    Returns (hidden after the last layer, before the final norm; new_past)."""
    T = h.shape[0]
    P = 0 if past is None else past[0][0].shape[1]
    new_past: Past = []
    rep = n_heads // n_kv

    def bias(name, flag):
        return W[name] if flag else None

    for li in range(n_layers):
        pre = f"{layer_prefix}{li}."
        x = rms_norm(h, W[pre + "input_layernorm.weight"], eps)
        a = pre + "self_attn."
        q = linear(x, W[a + "q_proj.weight"], bias(a + "q_proj.bias", qkv_bias))
        k = linear(x, W[a + "k_proj.weight"], bias(a + "k_proj.bias", qkv_bias))
        v = linear(x, W[a + "v_proj.weight"], bias(a + "v_proj.bias", qkv_bias))
        q = q.view(T, n_heads, head_dim).transpose(0, 1)   # [H, T, D]
        k = k.view(T, n_kv, head_dim).transpose(0, 1)      # [KV, T, D]
        v = v.view(T, n_kv, head_dim).transpose(0, 1)
        q = q * cos[None] + rotate_half(q) * sin[None]     # apply_rotary_pos_emb
        k = k * cos[None] + rotate_half(k) * sin[None]
        if past is not None:
            k = torch.cat([past[li][0], k], dim=1)
            v = torch.cat([past[li][1], v], dim=1)
        new_past.append((k, v))
        kk = k.repeat_interleave(rep, dim=0)  # repeat_kv: head h uses kv head h // rep
        vv = v.repeat_interleave(rep, dim=0)
        S = kk.shape[1]
        scores = torch.matmul(q, kk.transpose(1, 2)) * (head_dim ** -0.5)  # [H, T, S]
        # causal mask: query i (absolute P+i) sees keys j <= P+i
        causal = torch.arange(S)[None, :] > torch.arange(P, P + T)[:, None]
        scores = scores.masked_fill(causal[None], torch.finfo(torch.float32).min)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(probs, vv).transpose(0, 1).reshape(T, n_heads * head_dim)
        h = h + linear(o, W[a + "o_proj.weight"], bias(a + "o_proj.bias", o_bias))
        x = rms_norm(h, W[pre + "post_attention_layernorm.weight"], eps)
        m = pre + "mlp."
        g = linear(x, W[m + "gate_proj.weight"], bias(m + "gate_proj.bias", mlp_bias))
        u = linear(x, W[m + "up_proj.weight"], bias(m + "up_proj.bias", mlp_bias))
        h = h + linear(F.silu(g) * u, W[m + "down_proj.weight"], bias(m + "down_proj.bias", mlp_bias))
    return h, new_past
