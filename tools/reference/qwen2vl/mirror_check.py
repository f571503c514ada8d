#!/usr/bin/python3
"""Second, differently written check of the Qwen2-VL / Qwen2.5-VL fixtures.

Re-derives the expected tensors with formulations that do not share code paths with
qwen2vl_ref.py, and compares them with expected.safetensors / expected.json:

  * key set + shapes of model.safetensors == the parameter names HF's
    Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration would load from a
    hub-layout checkpoint (visual.*, model.*, lm_head.* unless tied), derived from the config;
  * pixel_values: patch rows built one by one from (t, bh, bw, mh, mw) coordinates;
  * vision tower: attention in ORIGINAL patch order with an explicit block mask (full image for
    Qwen2-VL and full-attention blocks; window id from each patch's (h, w) for windowed blocks),
    patch embed as a matmul, rotary angles from explicit (h, w) coordinates;
  * get_rope_index: a direct token walk;
  * M-RoPE: per-frequency-slot section lookup instead of split/cat;
  * LM: one full forward per generated token (no KV cache), nn.functional.scaled_dot_product
    style written with an explicit additive mask.

Run after make_fixtures.py:  /usr/bin/python3 tools/reference/qwen2vl/mirror_check.py   (any directory; prints ALL OK)
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'common'))
from refcommon.fixtures import check as ok, fixtures_dir  # noqa: E402
from refcommon.safetensors_io import load_safetensors  # noqa: E402  (file reading only)

FIX = fixtures_dir('qwen2vl')
torch.set_num_threads(1)


def hf_param_shapes(cfg):
    """Parameter names/shapes of the HF module tree, written in hub (pre-4.52) naming."""
    q25 = cfg['model_type'] == 'qwen2_5_vl'
    vc = cfg['vision_config']
    E = vc['hidden_size'] if q25 else vc['embed_dim']
    O = vc['out_hidden_size'] if q25 else vc['hidden_size']
    p, tps = vc['patch_size'], vc['temporal_patch_size']
    S = {'visual.patch_embed.proj.weight': (E, vc.get('in_chans', 3), tps, p, p)}
    for i in range(vc['depth']):
        b = f'visual.blocks.{i}.'
        for n in ('norm1', 'norm2'):
            S[b + n + '.weight'] = (E,)
            if not q25:
                S[b + n + '.bias'] = (E,)
        S[b + 'attn.qkv.weight'] = (3 * E, E)
        S[b + 'attn.qkv.bias'] = (3 * E,)
        S[b + 'attn.proj.weight'] = (E, E)
        S[b + 'attn.proj.bias'] = (E,)
        if q25:
            I = vc['intermediate_size']
            for n, shp in (('gate_proj', (I, E)), ('up_proj', (I, E)), ('down_proj', (E, I))):
                S[b + f'mlp.{n}.weight'] = shp
                S[b + f'mlp.{n}.bias'] = (shp[0],)
        else:
            I = int(E * vc['mlp_ratio'])
            S[b + 'mlp.fc1.weight'] = (I, E)
            S[b + 'mlp.fc1.bias'] = (I,)
            S[b + 'mlp.fc2.weight'] = (E, I)
            S[b + 'mlp.fc2.bias'] = (E,)
    C = E * vc['spatial_merge_size'] ** 2
    S['visual.merger.ln_q.weight'] = (E,)
    if not q25:
        S['visual.merger.ln_q.bias'] = (E,)
    S['visual.merger.mlp.0.weight'] = (C, C)
    S['visual.merger.mlp.0.bias'] = (C,)
    S['visual.merger.mlp.2.weight'] = (O, C)
    S['visual.merger.mlp.2.bias'] = (O,)
    H, V = cfg['hidden_size'], cfg['vocab_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = H // nh
    S['model.embed_tokens.weight'] = (V, H)
    for i in range(cfg['num_hidden_layers']):
        e = f'model.layers.{i}.'
        S[e + 'self_attn.q_proj.weight'] = (nh * hd, H)
        S[e + 'self_attn.q_proj.bias'] = (nh * hd,)
        S[e + 'self_attn.k_proj.weight'] = (nkv * hd, H)
        S[e + 'self_attn.k_proj.bias'] = (nkv * hd,)
        S[e + 'self_attn.v_proj.weight'] = (nkv * hd, H)
        S[e + 'self_attn.v_proj.bias'] = (nkv * hd,)
        S[e + 'self_attn.o_proj.weight'] = (H, nh * hd)
        S[e + 'mlp.gate_proj.weight'] = (cfg['intermediate_size'], H)
        S[e + 'mlp.up_proj.weight'] = (cfg['intermediate_size'], H)
        S[e + 'mlp.down_proj.weight'] = (H, cfg['intermediate_size'])
        S[e + 'input_layernorm.weight'] = (H,)
        S[e + 'post_attention_layernorm.weight'] = (H,)
    S['model.norm.weight'] = (H,)
    if not cfg['tie_word_embeddings']:
        S['lm_head.weight'] = (V, H)
    return S


def pixel_values_alt(img, pp):
    p, m, tps = pp['patch_size'], pp['merge_size'], pp['temporal_patch_size']
    f = p * m
    h, w = img.size[1], img.size[0]
    # smart_resize re-derived
    hb, wb = f * round(h / f), f * round(w / f)
    if hb * wb > pp['max_pixels']:
        s = math.sqrt(h * w / pp['max_pixels'])
        hb, wb = f * math.floor(h / s / f), f * math.floor(w / s / f)
    elif hb * wb < pp['min_pixels']:
        s = math.sqrt(pp['min_pixels'] / (h * w))
        hb, wb = f * math.ceil(h * s / f), f * math.ceil(w * s / f)
    a = np.asarray(img.convert('RGB').resize((wb, hb), Image.BICUBIC)).astype(np.float64) / 255.0
    a = a.astype(np.float32)
    a = (a - np.float32(pp['image_mean'])) / np.float32(pp['image_std'])
    gh, gw = hb // p, wb // p
    rows = []
    for bh in range(gh // m):
        for bw in range(gw // m):
            for mh in range(m):
                for mw in range(m):
                    y, x = (bh * m + mh) * p, (bw * m + mw) * p
                    patch = a[y:y + p, x:x + p, :].transpose(2, 0, 1)          # C, py, px
                    rows.append(np.stack([patch] * tps, axis=1).reshape(-1))   # C, t, py, px
    coords = [(bh * m + mh, bw * m + mw) for bh in range(gh // m) for bw in range(gw // m)
              for mh in range(m) for mw in range(m)]
    return torch.from_numpy(np.stack(rows).astype(np.float32)), (1, gh, gw), coords


def rmsn(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def vision_alt(W, cfg, pv, grid, coords):
    q25 = cfg['model_type'] == 'qwen2_5_vl'
    vc = cfg['vision_config']
    E = vc['hidden_size'] if q25 else vc['embed_dim']
    nh = vc['num_heads']
    hd = E // nh
    m = vc['spatial_merge_size']
    N = pv.shape[0]
    wt = W['visual.patch_embed.proj.weight']
    x = pv @ wt.reshape(E, -1).T
    # rotary: angle(slot j) = coord * 10000^(-2j/(hd/2)), slots [h..., w...], then doubled
    quarter = hd // 4
    invf = torch.tensor([10000.0 ** (-(2 * j) / (hd // 2)) for j in range(quarter)], dtype=torch.float32)
    hh = torch.tensor([c[0] for c in coords], dtype=torch.float32)
    ww = torch.tensor([c[1] for c in coords], dtype=torch.float32)
    ang = torch.cat([hh[:, None] * invf, ww[:, None] * invf], dim=1)
    ang = torch.cat([ang, ang], dim=1)
    cos, sin = ang.cos(), ang.sin()
    # masks
    full = torch.zeros(N, N)
    if q25:
        vws = vc['window_size'] // m // vc['patch_size']
        win = torch.tensor([((c[0] // m) // vws) * 10000 + (c[1] // m) // vws for c in coords])
        wmask = torch.where(win[:, None] == win[None, :], 0.0, float('-inf'))
    for i in range(vc['depth']):
        b = f'visual.blocks.{i}.'
        if q25:
            y = rmsn(x, W[b + 'norm1.weight'], 1e-6)
        else:
            y = F.layer_norm(x, (E,), W[b + 'norm1.weight'], W[b + 'norm1.bias'], 1e-6)
        qkv = y @ W[b + 'attn.qkv.weight'].T + W[b + 'attn.qkv.bias']
        q, k, v = qkv[:, :E], qkv[:, E:2 * E], qkv[:, 2 * E:]
        outs = []
        mask = full if (not q25 or i in vc['fullatt_block_indexes']) else wmask
        for h in range(nh):
            qh, kh, vh = (t[:, h * hd:(h + 1) * hd] for t in (q, k, v))
            rq = torch.cat([-qh[:, hd // 2:], qh[:, :hd // 2]], 1)
            rk = torch.cat([-kh[:, hd // 2:], kh[:, :hd // 2]], 1)
            qh, kh = qh * cos + rq * sin, kh * cos + rk * sin
            s = qh @ kh.T / math.sqrt(hd) + mask
            outs.append(torch.softmax(s, -1) @ vh)
        x = x + torch.cat(outs, 1) @ W[b + 'attn.proj.weight'].T + W[b + 'attn.proj.bias']
        if q25:
            y = rmsn(x, W[b + 'norm2.weight'], 1e-6)
            gte = y @ W[b + 'mlp.gate_proj.weight'].T + W[b + 'mlp.gate_proj.bias']
            up = y @ W[b + 'mlp.up_proj.weight'].T + W[b + 'mlp.up_proj.bias']
            x = x + (gte * torch.sigmoid(gte) * up) @ W[b + 'mlp.down_proj.weight'].T + W[b + 'mlp.down_proj.bias']
        else:
            y = F.layer_norm(x, (E,), W[b + 'norm2.weight'], W[b + 'norm2.bias'], 1e-6)
            f1 = y @ W[b + 'mlp.fc1.weight'].T + W[b + 'mlp.fc1.bias']
            x = x + (f1 / (1 + torch.exp(-1.702 * f1))) @ W[b + 'mlp.fc2.weight'].T + W[b + 'mlp.fc2.bias']
    blocks_out = x
    if q25:
        y = rmsn(x, W['visual.merger.ln_q.weight'], 1e-6)
    else:
        y = F.layer_norm(x, (E,), W['visual.merger.ln_q.weight'], W['visual.merger.ln_q.bias'], 1e-6)
    y = y.reshape(N // (m * m), -1)
    y = y @ W['visual.merger.mlp.0.weight'].T + W['visual.merger.mlp.0.bias']
    y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))
    y = y @ W['visual.merger.mlp.2.weight'].T + W['visual.merger.mlp.2.bias']
    return y, blocks_out


def positions_alt(ids, image_id, grid, m):
    pos, nxt, i = [], 0, 0
    gh, gw = grid[1] // m, grid[2] // m
    while i < len(ids):
        if ids[i] == image_id:
            for r in range(gh):
                for c in range(gw):
                    pos.append((nxt, nxt + r, nxt + c))
            nxt += max(gh, gw)
            i += gh * gw
        else:
            pos.append((nxt, nxt, nxt))
            nxt += 1
            i += 1
    return torch.tensor(pos).T


def lm_alt(W, cfg, emb, pos):
    H = cfg['hidden_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = H // nh
    sec = cfg['rope_scaling']['mrope_section']
    theta = cfg['rope_theta']
    eps = cfg['rms_norm_eps']
    T = emb.shape[0]
    slot_sec = [0] * sec[0] + [1] * sec[1] + [2] * sec[2]
    ang = torch.zeros(T, hd // 2)
    for j in range(hd // 2):
        invf = 1.0 / (theta ** (2 * j / hd))
        ang[:, j] = pos[slot_sec[j]].float() * torch.tensor(invf, dtype=torch.float32)
    ang = torch.cat([ang, ang], 1)
    cos, sin = ang.cos(), ang.sin()
    causal = torch.triu(torch.full((T, T), float('-inf')), 1)
    x = emb
    for li in range(cfg['num_hidden_layers']):
        e = f'model.layers.{li}.'
        y = rmsn(x, W[e + 'input_layernorm.weight'], eps)
        q = y @ W[e + 'self_attn.q_proj.weight'].T + W[e + 'self_attn.q_proj.bias']
        k = y @ W[e + 'self_attn.k_proj.weight'].T + W[e + 'self_attn.k_proj.bias']
        v = y @ W[e + 'self_attn.v_proj.weight'].T + W[e + 'self_attn.v_proj.bias']
        outs = []
        for h in range(nh):
            kvh = h // (nh // nkv)
            qh = q[:, h * hd:(h + 1) * hd]
            kh = k[:, kvh * hd:(kvh + 1) * hd]
            vh = v[:, kvh * hd:(kvh + 1) * hd]
            qh = qh * cos + torch.cat([-qh[:, hd // 2:], qh[:, :hd // 2]], 1) * sin
            kh = kh * cos + torch.cat([-kh[:, hd // 2:], kh[:, :hd // 2]], 1) * sin
            outs.append(torch.softmax(qh @ kh.T / math.sqrt(hd) + causal, -1) @ vh)
        x = x + torch.cat(outs, 1) @ W[e + 'self_attn.o_proj.weight'].T
        y = rmsn(x, W[e + 'post_attention_layernorm.weight'], eps)
        gte = y @ W[e + 'mlp.gate_proj.weight'].T
        x = x + (F.silu(gte) * (y @ W[e + 'mlp.up_proj.weight'].T)) @ W[e + 'mlp.down_proj.weight'].T
    x = rmsn(x, W['model.norm.weight'], eps)
    head = W['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else W['lm_head.weight']
    return x @ head.T


def main():
    img = Image.open(os.path.join(FIX, 'image.png'))
    for name in ('qwen2-vl', 'qwen2.5-vl'):
        d = os.path.join(FIX, name)
        print(f'[{name}]')
        cfg = json.load(open(os.path.join(d, 'config.json')))
        pp = json.load(open(os.path.join(d, 'preprocessor_config.json')))
        exp = json.load(open(os.path.join(d, 'expected.json')))
        X, _ = load_safetensors(os.path.join(d, 'expected.safetensors'))
        raw, _ = load_safetensors(os.path.join(d, 'model.safetensors'))
        shapes = hf_param_shapes(cfg)
        ok(set(raw) == set(shapes), f'checkpoint keys == HF parameter names ({len(shapes)} tensors)')
        ok(all(tuple(raw[k].shape) == shapes[k] for k in shapes), 'checkpoint shapes match the config')
        want = torch.bfloat16 if cfg['torch_dtype'] == 'bfloat16' else torch.float32
        ok(all(t.dtype == want for t in raw.values()), f'all weights stored as {want}')
        W = {k: v.float() for k, v in raw.items()}

        pv, grid, coords = pixel_values_alt(img, pp)
        ok(list(grid) == exp['preprocess']['image_grid_thw'][0], f'grid_thw {grid}')
        ok(torch.equal(pv, X['pixel_values']), 'pixel_values bit-identical (per-patch construction)')

        feats, blocks_out = vision_alt(W, cfg, pv, grid, coords)
        d1 = float((blocks_out - X['image.vision_block%d_out' % (cfg['vision_config']['depth'] - 1)]).abs().max())
        d2 = float((feats - X['image.merger_out']).abs().max())
        ok(d1 < 1e-4 and d2 < 1e-4, f'vision tower (mask formulation) matches: blocks {d1:.1e}, merger {d2:.1e}')

        m = cfg['vision_config']['spatial_merge_size']
        for case in ('image', 'text'):
            c = exp['cases'][case]
            ids = c['input_ids']
            if case == 'image':
                pos = positions_alt(ids, cfg['image_token_id'], grid, m)
            else:
                pos = torch.arange(len(ids)).repeat(3, 1)
            ok(pos.tolist() == c['position_ids'], f'{case}: 3-D position ids (token walk)')
            delta = int(pos.max()) + 1 - len(ids)
            ok(delta == c['rope_deltas'], f'{case}: rope_deltas {delta}')
            emb = W['model.embed_tokens.weight'][torch.tensor(ids)].clone()
            if case == 'image':
                emb[torch.tensor(ids) == cfg['image_token_id']] = feats
            logits = lm_alt(W, cfg, emb, pos)
            dd = float((logits - X[f'{case}.prompt_logits']).abs().max())
            ok(dd < 1e-3, f'{case}: prompt logits match ({dd:.1e})')
            seq = list(ids)
            gen = []
            for step in range(len(c['generated_ids'])):
                nt = int(torch.argmax(logits[-1]))
                dd = float((logits[-1] - X[f'{case}.generated_step_logits'][step]).abs().max())
                ok(dd < 1e-3, f'{case}: step {step} logits match ({dd:.1e}), token {nt}')
                gen.append(nt)
                seq.append(nt)
                e2 = W['model.embed_tokens.weight'][torch.tensor(seq)].clone()
                if case == 'image':
                    e2[torch.tensor(seq) == cfg['image_token_id']] = feats
                    p2 = positions_alt(seq, cfg['image_token_id'], grid, m)
                else:
                    p2 = torch.arange(len(seq)).repeat(3, 1)
                ok(int(p2[0, -1]) == len(seq) - 1 + delta, f'{case}: decode position = cache pos + delta')
                logits = lm_alt(W, cfg, e2, p2)
            ok(gen == c['generated_ids'], f'{case}: greedy ids {gen}')
    print('ALL OK')


if __name__ == '__main__':
    main()
