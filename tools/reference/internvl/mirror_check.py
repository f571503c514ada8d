#!/usr/bin/python3
"""Second, module-structured check of the fixtures.

Rebuilds the model as nn.Module trees that mirror the real classes' attribute
names (InternVLChatModel.{vision_model, language_model, mlp1} from
modeling_internvl_chat.py; InternVisionModel/InternVisionEmbeddings/
InternAttention/InternMLP/InternVisionEncoderLayer from modeling_intern_vit.py;
Qwen2ForCausalLM / LlamaForCausalLM attribute layout from transformers;
InternLM2ForCausalLM from internvl_chat/internvl/model/internlm2/modeling_internlm2.py), loads
model.safetensors with load_state_dict(strict=True) -- so every stored key name
and shape must match the real module structure -- and re-runs the image case in
HF style (position_ids, additive causal mask, repeat_kv via expand/reshape),
comparing with expected.safetensors.

    /usr/bin/python3 tools/reference/internvl/mirror_check.py     # from any directory; prints ALL OK
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'common'))
from refcommon.fixtures import fixtures_dir  # noqa: E402
from refcommon.safetensors_io import load_safetensors  # noqa: E402  (file reading only)

FIX = fixtures_dir('internvl')


class InternRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


NORM2FN = {'rms_norm': InternRMSNorm, 'layer_norm': nn.LayerNorm}


class InternVisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim, self.image_size, self.patch_size = c['hidden_size'], c['image_size'], c['patch_size']
        self.class_embedding = nn.Parameter(torch.randn(1, 1, self.embed_dim))
        self.patch_embedding = nn.Conv2d(3, self.embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_patches + 1, self.embed_dim))

    def _get_pos_embed(self, pos_embed, H, W):
        target_dtype = pos_embed.dtype
        pos_embed = pos_embed.float().reshape(
            1, self.image_size // self.patch_size, self.image_size // self.patch_size, -1).permute(0, 3, 1, 2)
        pos_embed = F.interpolate(pos_embed, size=(H, W), mode='bicubic', align_corners=False). \
            reshape(1, -1, H * W).permute(0, 2, 1).to(target_dtype)
        return pos_embed

    def forward(self, pixel_values):
        patch_embeds = self.patch_embedding(pixel_values)
        batch_size, _, height, width = patch_embeds.shape
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.class_embedding.expand(batch_size, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        position_embedding = torch.cat([self.position_embedding[:, :1, :],
                                        self._get_pos_embed(self.position_embedding[:, 1:, :], height, width)], dim=1)
        return embeddings + position_embedding


class InternAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim, self.num_heads = c['hidden_size'], c['num_attention_heads']
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(self.embed_dim, 3 * self.embed_dim, bias=c['qkv_bias'])
        self.qk_normalization = c['qk_normalization']
        if self.qk_normalization:
            self.q_norm = InternRMSNorm(self.embed_dim, eps=c['layer_norm_eps'])
            self.k_norm = InternRMSNorm(self.embed_dim, eps=c['layer_norm_eps'])
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.qk_normalization:
            B_, H_, N_, D_ = q.shape
            q = self.q_norm(q.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H_, D_).transpose(1, 2)
            k = self.k_norm(k.transpose(1, 2).flatten(-2, -1)).view(B_, N_, H_, D_).transpose(1, 2)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class InternMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c['hidden_size'], c['intermediate_size'])
        self.fc2 = nn.Linear(c['intermediate_size'], c['hidden_size'])

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.attn = InternAttention(c)
        self.mlp = InternMLP(c)
        self.norm1 = NORM2FN[c['norm_type']](d, eps=c['layer_norm_eps'])
        self.norm2 = NORM2FN[c['norm_type']](d, eps=c['layer_norm_eps'])
        self.ls1 = nn.Parameter(c['initializer_factor'] * torch.ones(d))
        self.ls2 = nn.Parameter(c['initializer_factor'] * torch.ones(d))

    def forward(self, h):
        h = h + self.attn(self.norm1(h)) * self.ls1
        return h + self.mlp(self.norm2(h)) * self.ls2


class InternVisionEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([InternVisionEncoderLayer(c) for _ in range(c['num_hidden_layers'])])


class InternVisionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = InternVisionEmbeddings(c)
        self.encoder = InternVisionEncoder(c)

    def forward(self, pixel_values):
        h = self.embeddings(pixel_values)
        states = (h,)
        for layer in self.encoder.layers:
            h = layer(h)
            states = states + (h,)
        return h, states


class RMSNorm(InternRMSNorm):
    pass


class Attn(nn.Module):
    def __init__(self, c, qwen):
        super().__init__()
        H, nh, nkv = c['hidden_size'], c['num_attention_heads'], c['num_key_value_heads']
        self.nh, self.nkv, self.hd = nh, nkv, H // nh
        qb = True if qwen else c.get('attention_bias', False)
        self.q_proj = nn.Linear(H, nh * self.hd, bias=qb)
        self.k_proj = nn.Linear(H, nkv * self.hd, bias=qb)
        self.v_proj = nn.Linear(H, nkv * self.hd, bias=qb)
        self.o_proj = nn.Linear(nh * self.hd, H, bias=False if qwen else c.get('attention_bias', False))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I = c['hidden_size'], c['intermediate_size']
        b = c.get('mlp_bias', False)
        self.gate_proj = nn.Linear(H, I, bias=b)
        self.up_proj = nn.Linear(H, I, bias=b)
        self.down_proj = nn.Linear(I, H, bias=b)


class DecoderLayer(nn.Module):
    def __init__(self, c, qwen):
        super().__init__()
        self.self_attn = Attn(c, qwen)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class Model(nn.Module):
    def __init__(self, c, qwen):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList([DecoderLayer(c, qwen) for _ in range(c['num_hidden_layers'])])
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class CausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        qwen = c['architectures'][0] == 'Qwen2ForCausalLM'
        self.model = Model(c, qwen)
        self.lm_head = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)

    def forward(self, inputs_embeds):
        # HF style: batch dim, position_ids, additive causal mask, repeat_kv by expand/reshape
        x = inputs_embeds[None]
        bsz, T, _ = x.shape
        position_ids = torch.arange(T)[None]
        hd = self.c['hidden_size'] // self.c['num_attention_heads']
        inv_freq = 1.0 / (self.c['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        freqs = (inv_freq[None, :, None].float() @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]

        def rot(t):
            return torch.cat((-t[..., t.shape[-1] // 2:], t[..., : t.shape[-1] // 2]), dim=-1)

        for layer in self.model.layers:
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(bsz, T, -1, hd).transpose(1, 2)
            k = a.k_proj(h).view(bsz, T, -1, hd).transpose(1, 2)
            v = a.v_proj(h).view(bsz, T, -1, hd).transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            n_rep = a.nh // a.nkv
            k = k[:, :, None].expand(bsz, a.nkv, n_rep, T, hd).reshape(bsz, a.nh, T, hd)
            v = v[:, :, None].expand(bsz, a.nkv, n_rep, T, hd).reshape(bsz, a.nh, T, hd)
            w = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5 + mask
            w = F.softmax(w, dim=-1, dtype=torch.float32)
            o = torch.matmul(w, v).transpose(1, 2).reshape(bsz, T, -1)
            x = x + a.o_proj(o)
            h = layer.post_attention_layernorm(x)
            x = x + layer.mlp.down_proj(F.silu(layer.mlp.gate_proj(h)) * layer.mlp.up_proj(h))
        return self.lm_head(self.model.norm(x))[0]


class InternLM2Attention(nn.Module):
    # modeling_internlm2.py (internvl_chat/internvl/model/internlm2): wqkv packs q/k/v, wo, bias=config.bias
    def __init__(self, c):
        super().__init__()
        self.hidden_size, self.num_heads = c['hidden_size'], c['num_attention_heads']
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = c['num_key_value_heads']
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.wqkv = nn.Linear(self.hidden_size, (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim,
                              bias=c['bias'])
        self.wo = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=c['bias'])


class InternLM2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.w1 = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.w3 = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.w2 = nn.Linear(c['intermediate_size'], c['hidden_size'], bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = InternLM2Attention(c)
        self.feed_forward = InternLM2MLP(c)
        self.attention_norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.ffn_norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class InternLM2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.tok_embeddings = nn.Embedding(c['vocab_size'], c['hidden_size'], c.get('pad_token_id'))
        self.layers = nn.ModuleList([InternLM2DecoderLayer(c) for _ in range(c['num_hidden_layers'])])
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class InternLM2ForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = InternLM2Model(c)
        self.output = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)

    def embed(self, ids):
        return self.model.tok_embeddings(ids)

    def forward(self, inputs_embeds):
        # InternLM2Model.forward / InternLM2Attention.forward (eager), batch 1, no cache
        x = inputs_embeds[None]
        bsz, q_len, _ = x.shape
        c = self.c
        position_ids = torch.arange(q_len, dtype=torch.long)[None]
        # InternLM2RotaryEmbedding: cos/sin cache over max_position_embeddings, indexed by position_ids
        # (InternLM2DynamicNTKScalingRotaryEmbedding only differs once seq_len > max_position_embeddings)
        a0 = self.model.layers[0].attention
        dim = a0.head_dim
        assert q_len <= c['max_position_embeddings']
        inv_freq = 1.0 / (c['rope_theta'] ** (torch.arange(0, dim, 2).float() / dim))
        t = torch.arange(c['max_position_embeddings']).to(dtype=inv_freq.dtype)
        freqs = torch.einsum('i,j->ij', t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos()[:q_len][position_ids].unsqueeze(1)
        sin = emb.sin()[:q_len][position_ids].unsqueeze(1)
        # _make_causal_mask
        mask = torch.full((q_len, q_len), torch.finfo(torch.float32).min)
        cond = torch.arange(q_len)
        mask.masked_fill_(cond < (cond + 1).view(q_len, 1), 0)
        mask = mask[None, None]

        def rot(tn):
            return torch.cat((-tn[..., tn.shape[-1] // 2:], tn[..., : tn.shape[-1] // 2]), dim=-1)

        for layer in self.model.layers:
            a = layer.attention
            residual = x
            h = layer.attention_norm(x)
            qkv = a.wqkv(h)
            # rearrange(qkv, 'b q (h gs d) -> b q h gs d', gs=2 + num_key_value_groups, d=head_dim)
            qkv = qkv.view(bsz, q_len, -1, 2 + a.num_key_value_groups, a.head_dim)
            q = qkv[..., : a.num_key_value_groups, :]
            q = q.reshape(bsz, q_len, -1, a.head_dim)      # 'b q h gs d -> b q (h gs) d'
            k = qkv[..., -2, :]
            v = qkv[..., -1, :]
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            n_rep = a.num_key_value_groups
            k = k[:, :, None].expand(bsz, a.num_key_value_heads, n_rep, q_len, a.head_dim).reshape(
                bsz, a.num_heads, q_len, a.head_dim)
            v = v[:, :, None].expand(bsz, a.num_key_value_heads, n_rep, q_len, a.head_dim).reshape(
                bsz, a.num_heads, q_len, a.head_dim)
            w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(a.head_dim) + mask
            w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
            o = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(bsz, q_len, a.hidden_size)
            x = residual + a.wo(o)
            x = x + layer.feed_forward(layer.ffn_norm(x))
        return self.output(self.model.norm(x)).float()[0]


class InternVLChatModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        vc, lc = config['vision_config'], config['llm_config']
        r = config['downsample_ratio']
        self.vision_model = InternVisionModel(vc)
        if lc['architectures'][0] == 'InternLM2ForCausalLM':
            self.language_model = InternLM2ForCausalLM(lc)
        else:
            self.language_model = CausalLM(lc)
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vc['hidden_size'] * int(1 / r) ** 2),
            nn.Linear(vc['hidden_size'] * int(1 / r) ** 2, lc['hidden_size']),
            nn.GELU(),
            nn.Linear(lc['hidden_size'], lc['hidden_size']))

    def extract_feature(self, pixel_values):
        last, states = self.vision_model(pixel_values)
        sl = self.config['select_layer']
        vit_embeds = last if sl == -1 else states[sl]
        vit_embeds = vit_embeds[:, 1:, :]
        h = w = int(vit_embeds.shape[1] ** 0.5)
        x = vit_embeds.reshape(vit_embeds.shape[0], h, w, -1)
        n, w, h, c = x.size()
        s = self.config['downsample_ratio']
        x = x.view(n, w, int(h * s), int(c / s)).permute(0, 2, 1, 3).contiguous()
        x = x.view(n, int(h * s), int(w * s), int(c / (s * s)))
        if self.config['ps_version'] != 'v1':
            x = x.permute(0, 2, 1, 3).contiguous()
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        return self.mlp1(x)


def main():
    ok = True
    for name in sorted(os.listdir(FIX)):
        d = os.path.join(FIX, name)
        if not os.path.isdir(d):
            continue
        cfg = json.load(open(os.path.join(d, 'config.json'), encoding='utf-8'))
        exp = json.load(open(os.path.join(d, 'expected.json'), encoding='utf-8'))
        W, _ = load_safetensors(os.path.join(d, 'model.safetensors'))
        E, _ = load_safetensors(os.path.join(d, 'expected.safetensors'))
        m = InternVLChatModel(cfg)
        missing, unexpected = m.load_state_dict({k: v.float() for k, v in W.items()}, strict=True)
        print(f'[{name}] strict load_state_dict: OK ({len(W)} tensors)')
        with torch.no_grad():
            vit = m.extract_feature(E['pixel_values'])
            ids = torch.tensor(exp['cases']['image']['input_ids'])
            lmm = m.language_model.model
            emb = (lmm.tok_embeddings if hasattr(lmm, 'tok_embeddings') else lmm.embed_tokens)(ids).clone()
            sel = ids == exp['img_context_token_id']
            emb[sel] = vit.reshape(-1, emb.shape[-1])
            logits = m.language_model(emb)
        d1 = float((vit - E['image.vit_embeds']).abs().max())
        d2 = float((logits - E['image.prompt_logits']).abs().max())
        print(f'  vit_embeds max|diff| = {d1:.3e}; prompt logits max|diff| = {d2:.3e}; '
              f'argmax(last) = {int(logits[-1].argmax())} vs {exp["cases"]["image"]["first_step_argmax"]}')
        ok &= d1 < 1e-4 and d2 < 1e-3 and int(logits[-1].argmax()) == exp['cases']['image']['first_step_argmax']
    print('ALL OK' if ok else 'MISMATCH')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
