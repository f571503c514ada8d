#!/usr/bin/python3
"""Second, structurally independent check of the -hf fixture.

Rebuilds InternVLForConditionalGeneration as an nn.Module tree whose ATTRIBUTE NAMES follow
transformers' modeling_internvl.py (4.52: .model.{vision_tower, multi_modal_projector, language_model},
.lm_head) and modeling_qwen2.py, loads model.safetensors with load_state_dict(strict=True) -- so every key
name and shape must be exactly what the real classes register -- and re-runs the image and text cases
from expected.json (prompt logits + greedy ids, batch dimension kept, HF-style [B, H, T, D] attention).

    /usr/bin/python3 tools/reference/internvl-hf/mirror_check.py      # from any directory; prints ALL OK
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from refcommon.fixtures import fixtures_dir  # noqa: E402
from refcommon.safetensors_io import load_safetensors  # noqa: E402  (file reading only)

D = fixtures_dir("internvl-hf", "internvl3-hf")
torch.set_num_threads(1)


class NS:
    def __init__(self, d):
        self.__dict__.update(d)


# ----------------------------- vision (modeling_internvl.py) -----------------------------

class InternVLVisionRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(v + self.variance_epsilon)).to(x.dtype)


class InternVLVisionPatchEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.projection = nn.Conv2d(c.num_channels, c.hidden_size, kernel_size=c.patch_size, stride=c.patch_size)

    def forward(self, pv):
        return self.projection(pv).flatten(2).transpose(1, 2)


class InternVLVisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.patch_embeddings = InternVLVisionPatchEmbeddings(c)
        n = (c.image_size[0] // c.patch_size[0]) * (c.image_size[1] // c.patch_size[1])
        self.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, c.hidden_size))

    def forward(self, pv):
        e = self.patch_embeddings(pv)
        e = torch.cat((self.cls_token.expand(e.shape[0], -1, -1), e), dim=1)
        assert e.shape[1] == self.position_embeddings.shape[1]  # no interpolation at the native size
        return e + self.position_embeddings


class InternVLVisionAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim, self.num_heads = c.hidden_size, c.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=c.attention_bias)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=c.attention_bias)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=c.attention_bias)
        self.projection_layer = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_norm = InternVLVisionRMSNorm(self.embed_dim) if c.use_qk_norm else nn.Identity()
        self.k_norm = InternVLVisionRMSNorm(self.embed_dim) if c.use_qk_norm else nn.Identity()

    def forward(self, x):
        B, N, _ = x.shape
        q = self.q_norm(self.q_proj(x)).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_norm(self.k_proj(x)).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        w = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5, dim=-1)
        o = torch.matmul(w, v).transpose(1, 2).reshape(B, N, self.embed_dim)
        return self.projection_layer(o)


class InternVLVisionMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class InternVLVisionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = InternVLVisionAttention(c)
        self.mlp = InternVLVisionMLP(c)
        norm = {"layer_norm": nn.LayerNorm, "rms_norm": InternVLVisionRMSNorm}[c.norm_type]
        self.layernorm_before = norm(c.hidden_size, eps=c.layer_norm_eps)
        self.layernorm_after = norm(c.hidden_size, eps=c.layer_norm_eps)
        self.lambda_1 = nn.Parameter(torch.ones(c.hidden_size))
        self.lambda_2 = nn.Parameter(torch.ones(c.hidden_size))

    def forward(self, x):
        h = self.lambda_1 * self.attention(self.layernorm_before(x)) + x
        return self.lambda_2 * self.mlp(self.layernorm_after(h)) + h


class InternVLVisionEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([InternVLVisionLayer(c) for _ in range(c.num_hidden_layers)])


class InternVLVisionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = InternVLVisionEmbeddings(c)
        self.encoder = InternVLVisionEncoder(c)
        self.layernorm = nn.Identity() if c.use_mean_pooling else nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, pv):
        h = self.embeddings(pv)
        for lyr in self.encoder.layer:
            h = lyr(h)
        return self.layernorm(h)


class InternVLMultiModalProjector(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cin = cfg.vision_config.hidden_size * int(1 / cfg.downsample_ratio) ** 2
        self.layer_norm = nn.LayerNorm(cin)
        self.linear_1 = nn.Linear(cin, cfg.text_config.hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(cfg.text_config.hidden_size, cfg.text_config.hidden_size)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(self.layer_norm(x))))


# ----------------------------- Qwen2 (modeling_qwen2.py) -----------------------------

class Qwen2RMSNorm(InternVLVisionRMSNorm):
    pass


class Qwen2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.nh, self.nkv = c.num_attention_heads, c.num_key_value_heads
        self.q_proj = nn.Linear(c.hidden_size, self.nh * self.head_dim, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.nkv * self.head_dim, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.nkv * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.nh * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache, li):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)

        def rot(t):
            return torch.cat((-t[..., t.shape[-1] // 2:], t[..., : t.shape[-1] // 2]), dim=-1)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        if li in cache:  # DynamicCache.update
            k = torch.cat([cache[li][0], k], dim=2)
            v = torch.cat([cache[li][1], v], dim=2)
        cache[li] = (k, v)
        n_rep = self.nh // self.nkv
        k = k[:, :, None].expand(B, self.nkv, n_rep, k.shape[2], self.head_dim).reshape(B, self.nh, -1, self.head_dim)
        v = v[:, :, None].expand(B, self.nkv, n_rep, v.shape[2], self.head_dim).reshape(B, self.nh, -1, self.head_dim)
        S = k.shape[2]
        w = torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5
        mask = torch.full((T, S), torch.finfo(torch.float32).min).triu(S - T + 1)
        w = torch.softmax(w + mask, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, v).transpose(1, 2).reshape(B, T, -1)
        return self.o_proj(o)


class Qwen2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Qwen2Attention(c)
        self.mlp = Qwen2MLP(c)
        self.input_layernorm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)


class Qwen2RotaryEmbedding(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim = c.hidden_size // c.num_attention_heads
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv, persistent=False)  # not in the state dict

    def forward(self, pos):
        f = pos.float()[:, None] * self.inv_freq[None]
        e = torch.cat((f, f), dim=-1)
        return e.cos()[None, None], e.sin()[None, None]


class Qwen2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Qwen2DecoderLayer(c) for _ in range(c.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(c)

    def forward(self, emb, cache, past_len):
        cos, sin = self.rotary_emb(torch.arange(past_len, past_len + emb.shape[1]))
        h = emb
        for li, lyr in enumerate(self.layers):
            h = h + lyr.self_attn(lyr.input_layernorm(h), cos, sin, cache, li)
            h = h + lyr.mlp(lyr.post_attention_layernorm(h))
        return self.norm(h)


# ----------------------------- InternVL (modeling_internvl.py) -----------------------------

class InternVLModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision_tower = InternVLVisionModel(cfg.vision_config)
        self.multi_modal_projector = InternVLMultiModalProjector(cfg)
        self.language_model = Qwen2Model(cfg.text_config)

    def get_image_features(self, pv):
        f = self.vision_tower(pv)[:, 1:, :]
        B, n = f.shape[0], int(f.shape[1] ** 0.5)
        f = f.reshape(B, n, n, -1)
        # pixel_shuffle(scale 0.5)
        b, w, h, c = f.shape
        f = f.view(b, w, h // 2, c * 2).permute(0, 2, 1, 3).contiguous()
        f = f.view(b, h // 2, w // 2, c * 4).permute(0, 2, 1, 3).contiguous()
        return self.multi_modal_projector(f.reshape(B, -1, f.shape[-1]))


class InternVLForConditionalGeneration(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = InternVLModel(cfg)
        self.lm_head = nn.Linear(cfg.text_config.hidden_size, cfg.text_config.vocab_size, bias=False)

    @torch.no_grad()
    def forward(self, input_ids, pixel_values, cache, past_len):
        emb = self.model.language_model.embed_tokens(input_ids)
        if pixel_values is not None:
            feats = self.model.get_image_features(pixel_values)
            mask = (input_ids == self.model.cfg.image_token_id).unsqueeze(-1).expand_as(emb)
            emb = emb.masked_scatter(mask, feats)
        return self.lm_head(self.model.language_model(emb, cache, past_len))


def main():
    with open(os.path.join(D, "config.json")) as f:
        raw = json.load(f)
    cfg = NS(raw)
    cfg.vision_config = NS(raw["vision_config"])
    cfg.text_config = NS(raw["text_config"])
    model = InternVLForConditionalGeneration(cfg).eval()
    sd, _ = load_safetensors(os.path.join(D, "model.safetensors"))
    model.load_state_dict(sd, strict=True)
    print("ok: load_state_dict(strict=True): every key and shape matches the module tree")
    exp_t, _ = load_safetensors(os.path.join(D, "expected.safetensors"))
    with open(os.path.join(D, "expected.json")) as f:
        exp = json.load(f)
    pv = exp_t["pixel_values"]
    for case in ("image", "text"):
        ids = exp_t[f"{case}.input_ids"][None]
        p = pv if case == "image" else None
        cache = {}
        logits = model(ids, p, cache, 0)[0]
        d = float((logits - exp_t[f"{case}.prompt_logits"]).abs().max())
        assert d < 1e-4, d
        out, past = [], ids.shape[1]
        nxt = int(logits[-1].argmax())
        for _ in range(exp["generation"]["max_new_tokens"]):
            out.append(nxt)
            if nxt == exp["eos_token_id"]:
                break
            step = model(torch.tensor([[nxt]]), None, cache, past)[0, -1]
            past += 1
            nxt = int(step.argmax())
        assert out == exp["cases"][case]["generated_ids"], (out, exp["cases"][case]["generated_ids"])
        print(f"ok: {case}: prompt logits max |diff| {d:.2e}, greedy ids {out} match")
    print("ALL OK")


if __name__ == "__main__":
    main()
