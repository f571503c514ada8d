"""Independent plain-PyTorch reference for InternVL2.5-style checkpoints.

This file re-implements, in plain PyTorch (no `transformers`, no `safetensors`
package), the inference path that InternVL's own code runs for
`InternVLChatModel.chat()`:

  * image preprocessing: `build_transform` / `find_closest_aspect_ratio` /
    `dynamic_preprocess` / `load_image` as published in InternVL's README and
    quick-start docs (OpenGVLab/InternVL document/how_to_quickstart_with_hf.md,
    identical in the InternVL2.5 model cards);
  * InternViT: OpenGVLab/InternVL internvl_chat/internvl/model/internvl_chat/
    modeling_intern_vit.py (InternVisionEmbeddings, InternAttention._naive_attn,
    InternMLP, InternVisionEncoderLayer, InternVisionEncoder, InternRMSNorm)
    with the config keys of configuration_intern_vit.py (InternVisionConfig);
  * InternVLChatModel.extract_feature / pixel_shuffle / mlp1 / chat / generate:
    internvl_chat/internvl/model/internvl_chat/modeling_internvl_chat.py
    (commit dd3635206874, the version whose chat() uses
    `tokenizer.convert_tokens_to_ids(template.sep.strip())` for eos);
  * conversation templates: internvl_chat/internvl/conversation.py
    (SeparatorStyle.MPT; templates 'internvl2_5', 'Hermes-2',
    'internlm2-chat', 'phi3-chat');
  * the language models: transformers' models/qwen2/modeling_qwen2.py and
    models/llama/modeling_llama.py (RMSNorm in float32, rotate_half RoPE with
    default rope_type, GQA via repeat_kv, eager attention with float32
    softmax, SwiGLU MLP, final norm, lm_head), and InternLM2ForCausalLM from
    internvl_chat/internvl/model/internlm2/modeling_internlm2.py (packed
    `wqkv` split as 'b q (h gs d) -> b q h gs d', gs = 2 + heads/kv_heads;
    InternLM2RotaryEmbedding / InternLM2DynamicNTKScalingRotaryEmbedding;
    InternLM2Attention eager path; InternLM2MLP w2(silu(w1 x) * w3 x);
    tok_embeddings / attention_norm / ffn_norm / norm / output).

All math runs in float32; bf16 checkpoints are upcast to float32 when loaded.
Tokenization is NOT done here (see tokenize.mjs, which uses tokenizers.js).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ---------------------------------------------------------------------------
# safetensors I/O (hand written: 8-byte LE header length, JSON header, data) and the small
# building blocks live in tools/reference/common/refcommon (shared by the three references).
# ---------------------------------------------------------------------------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'common'))
from refcommon.safetensors_io import load_safetensors, save_safetensors  # noqa: E402,F401
from refcommon.ops import decoder_layers, gelu, layer_norm, linear, rms_norm, rotate_half  # noqa: E402,F401

# ---------------------------------------------------------------------------
# Image preprocessing -- InternVL README / document/how_to_quickstart_with_hf.md
# ---------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    # verbatim logic of the README's find_closest_aspect_ratio
    best_ratio_diff = float('inf')
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False,
                       return_grid=False):
    # verbatim logic of the README's dynamic_preprocess (return_grid is ours)
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height

    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])

    target_aspect_ratio = find_closest_aspect_ratio(
        aspect_ratio, target_ratios, orig_width, orig_height, image_size)

    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]

    # PIL's Image.resize default resample for RGB images is BICUBIC (Pillow >= 7.0);
    # the README calls it without a resample argument, and so do we.
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size
        )
        split_img = resized_img.crop(box)
        processed_images.append(split_img)
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        thumbnail_img = image.resize((image_size, image_size))
        processed_images.append(thumbnail_img)
    if return_grid:
        return processed_images, target_aspect_ratio
    return processed_images


def build_transform(input_size):
    """torchvision-free equivalent of the README's build_transform:
    T.Lambda(convert RGB) -> T.Resize((s, s), BICUBIC) -> T.ToTensor() -> T.Normalize.
    T.Resize on a PIL image calls PIL's img.resize((s, s), BICUBIC); every tile
    produced by dynamic_preprocess is already s x s, for which PIL returns a copy,
    so the resize is an identity here (asserted below).  ToTensor: uint8 HWC ->
    float32 CHW / 255.  Normalize: (x - mean) / std with float32 mean/std."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)

    def transform(img: Image.Image) -> torch.Tensor:
        if img.mode != 'RGB':
            img = img.convert('RGB')
        if img.size != (input_size, input_size):
            img = img.resize((input_size, input_size), Image.BICUBIC)
        arr = np.array(img, dtype=np.uint8, copy=True)
        t = torch.from_numpy(arr).view(img.size[1], img.size[0], 3).permute(2, 0, 1).contiguous()
        t = t.to(dtype=torch.float32).div(255)
        return t.sub(mean).div(std)

    return transform


def load_image(image_file, input_size=448, max_num=12, min_num=1):
    """README load_image (min_num is the README default 1 unless overridden).
    Returns (pixel_values [tiles,3,s,s] float32, grid (cols, rows))."""
    image = image_file if isinstance(image_file, Image.Image) else Image.open(image_file)
    image = image.convert('RGB')
    transform = build_transform(input_size=input_size)
    images, grid = dynamic_preprocess(image, min_num=min_num, image_size=input_size,
                                      use_thumbnail=True, max_num=max_num, return_grid=True)
    pixel_values = [transform(im) for im in images]
    pixel_values = torch.stack(pixel_values)
    return pixel_values, grid


# ---------------------------------------------------------------------------
# Conversation templates -- internvl_chat/internvl/conversation.py
# ---------------------------------------------------------------------------

TEMPLATES = {
    # name: (system_template, system_message, roles, sep)   all SeparatorStyle.MPT
    'internvl2_5': ('<|im_start|>system\n{system_message}',
                    '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。',
                    ('<|im_start|>user\n', '<|im_start|>assistant\n'), '<|im_end|>\n'),
    'Hermes-2': ('<|im_start|>system\n{system_message}',
                 '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。',
                 ('<|im_start|>user\n', '<|im_start|>assistant\n'), '<|im_end|>'),
    'internlm2-chat': ('<|im_start|>system\n{system_message}',
                       '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。',
                       ('<|im_start|>user\n', '<|im_start|>assistant\n'), '<|im_end|>'),
    'phi3-chat': ('<|system|>\n{system_message}',
                  '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。',
                  ('<|user|>\n', '<|assistant|>\n'), '<|end|>'),
}


def mpt_get_prompt(system_template, system_message, messages, sep):
    """Conversation.get_prompt for SeparatorStyle.MPT."""
    system_prompt = system_template.format(system_message=system_message)
    ret = system_prompt + sep
    for role, message in messages:
        if message:
            if type(message) is tuple:
                message, _, _ = message
            ret += role + message + sep
        else:
            ret += role
    return ret


IMG_START_TOKEN = '<img>'
IMG_END_TOKEN = '</img>'
IMG_CONTEXT_TOKEN = '<IMG_CONTEXT>'


def build_chat_query(template: str, question: str, num_patches_list: Optional[Sequence[int]],
                     num_image_token: int, has_image: bool,
                     system_message: Optional[str] = None,
                     history: Optional[List[Tuple[str, str]]] = None):
    """The string InternVLChatModel.chat() tokenizes, plus the eos token string.

    Mirrors chat(): '<image>\\n' is prepended when pixel_values is given, no
    history and no '<image>' in the question; template.system_message =
    model.system_message (the template default unless config.system_message
    exists); each '<image>' is replaced (once, in order) by
    <img> + <IMG_CONTEXT> * num_image_token * num_patches + </img>;
    eos_token_id = convert_tokens_to_ids(template.sep.strip())."""
    system_template, default_sys, roles, sep = TEMPLATES[template]
    if system_message is None:
        system_message = default_sys
    if history is None and has_image and '<image>' not in question:
        question = '<image>\n' + question
    if num_patches_list is None:
        num_patches_list = []
    messages = []
    for old_q, old_a in (history or []):
        messages.append((roles[0], old_q))
        messages.append((roles[1], old_a))
    messages.append((roles[0], question))
    messages.append((roles[1], None))
    query = mpt_get_prompt(system_template, system_message, messages, sep)
    for num_patches in num_patches_list:
        image_tokens = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token * num_patches + IMG_END_TOKEN
        query = query.replace('<image>', image_tokens, 1)
    return query, sep.strip(), question


# ---------------------------------------------------------------------------
# Building blocks (layer_norm, linear, gelu from refcommon.ops; the decoder layers use its rotate_half)
# ---------------------------------------------------------------------------

# InternRMSNorm (modeling_intern_vit.py) and Qwen2RMSNorm / LlamaRMSNorm are the same formula:
# float32 variance, weight * x.to(input_dtype) -- refcommon.ops.rms_norm.
intern_rms_norm = rms_norm
llm_rms_norm = rms_norm


# ---------------------------------------------------------------------------
# InternViT -- modeling_intern_vit.py
# ---------------------------------------------------------------------------

class InternViTRef:
    def __init__(self, vcfg: dict, W: Dict[str, torch.Tensor], prefix='vision_model.'):
        self.cfg = vcfg
        self.W = W
        self.p = prefix
        self.embed_dim = vcfg['hidden_size']
        self.image_size = vcfg['image_size']
        self.patch_size = vcfg['patch_size']
        self.num_heads = vcfg['num_attention_heads']
        self.eps = vcfg.get('layer_norm_eps', 1e-6)
        self.norm_type = vcfg.get('norm_type', 'rms_norm')
        self.qk_norm = vcfg.get('qk_normalization', True)
        self.qkv_bias = vcfg.get('qkv_bias', False)
        self.n_layers = vcfg['num_hidden_layers']
        act = vcfg.get('hidden_act', 'gelu')
        if act != 'gelu':
            raise NotImplementedError(act)
        if vcfg.get('drop_path_rate', 0.0) not in (0, 0.0):
            # DropPath is inactive in eval mode anyway; nothing to do at inference.
            pass

    def w(self, name):
        return self.W[self.p + name]

    def wo(self, name):
        return self.W.get(self.p + name)

    def _get_pos_embed(self, pos_embed, H, W):
        # InternVisionEmbeddings._get_pos_embed: always bicubic-interpolates the patch
        # part (align_corners=False) from (image_size//patch)^2 to H x W, in float32.
        target_dtype = pos_embed.dtype
        g = self.image_size // self.patch_size
        pos_embed = pos_embed.float().reshape(1, g, g, -1).permute(0, 3, 1, 2)
        pos_embed = F.interpolate(pos_embed, size=(H, W), mode='bicubic', align_corners=False). \
            reshape(1, -1, H * W).permute(0, 2, 1).to(target_dtype)
        return pos_embed

    def embeddings(self, pixel_values):
        patch_embeds = F.conv2d(pixel_values, self.w('embeddings.patch_embedding.weight'),
                                self.w('embeddings.patch_embedding.bias'), stride=self.patch_size)
        batch_size, _, height, width = patch_embeds.shape
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.w('embeddings.class_embedding').expand(batch_size, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        pos = self.w('embeddings.position_embedding')
        position_embedding = torch.cat([pos[:, :1, :], self._get_pos_embed(pos[:, 1:, :], height, width)], dim=1)
        return embeddings + position_embedding

    def _norm(self, x, name):
        if self.norm_type == 'layer_norm':
            return layer_norm(x, self.w(name + '.weight'), self.w(name + '.bias'), self.eps)
        elif self.norm_type == 'rms_norm':
            return intern_rms_norm(x, self.w(name + '.weight'), self.eps)
        raise NotImplementedError(self.norm_type)

    def attention(self, x, li):
        # InternAttention._naive_attn
        pre = f'encoder.layers.{li}.attn.'
        B, N, C = x.shape
        H = self.num_heads
        D = C // H
        scale = D ** -0.5
        qkv = linear(x, self.w(pre + 'qkv.weight'), self.wo(pre + 'qkv.bias') if self.qkv_bias else None)
        qkv = qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.qk_norm:
            # q_norm / k_norm: InternRMSNorm over the FULL embed dim (heads flattened)
            B_, H_, N_, D_ = q.shape
            q = intern_rms_norm(q.transpose(1, 2).flatten(-2, -1), self.w(pre + 'q_norm.weight'), self.eps) \
                .view(B_, N_, H_, D_).transpose(1, 2)
            k = intern_rms_norm(k.transpose(1, 2).flatten(-2, -1), self.w(pre + 'k_norm.weight'), self.eps) \
                .view(B_, N_, H_, D_).transpose(1, 2)
        attn = ((q * scale) @ k.transpose(-2, -1))
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return linear(out, self.w(pre + 'proj.weight'), self.w(pre + 'proj.bias'))

    def mlp(self, x, li):
        pre = f'encoder.layers.{li}.mlp.'
        h = linear(x, self.w(pre + 'fc1.weight'), self.w(pre + 'fc1.bias'))
        h = gelu(h)
        return linear(h, self.w(pre + 'fc2.weight'), self.w(pre + 'fc2.bias'))

    def layer(self, x, li):
        # InternVisionEncoderLayer.forward (drop_path = Identity at inference):
        # x = x + attn(norm1(x)) * ls1 ; x = x + mlp(norm2(x)) * ls2
        pre = f'encoder.layers.{li}.'
        x = x + self.attention(self._norm(x, pre + 'norm1'), li) * self.w(pre + 'ls1')
        x = x + self.mlp(self._norm(x, pre + 'norm2'), li) * self.w(pre + 'ls2')
        return x

    def forward(self, pixel_values):
        """Returns (last_hidden_state, hidden_states tuple) like InternVisionModel with
        output_hidden_states=True: hidden_states = (embeddings, layer0_out, ..., last)."""
        h = self.embeddings(pixel_values)
        states = [h]
        for li in range(self.n_layers):
            h = self.layer(h, li)
            states.append(h)
        return h, states


# ---------------------------------------------------------------------------
# Decoder-only LM -- transformers Qwen2ForCausalLM / LlamaForCausalLM
# ---------------------------------------------------------------------------

class DecoderLMRef:
    def __init__(self, lcfg: dict, W: Dict[str, torch.Tensor], prefix='language_model.'):
        self.cfg = lcfg
        self.W = W
        self.p = prefix
        arch = lcfg['architectures'][0]
        self.arch = arch
        if arch not in ('Qwen2ForCausalLM', 'LlamaForCausalLM'):
            raise NotImplementedError(arch)
        self.hidden = lcfg['hidden_size']
        self.n_heads = lcfg['num_attention_heads']
        self.n_kv = lcfg.get('num_key_value_heads') or self.n_heads
        self.head_dim = lcfg.get('head_dim') or self.hidden // self.n_heads
        self.n_layers = lcfg['num_hidden_layers']
        self.eps = lcfg['rms_norm_eps']
        self.theta = lcfg.get('rope_theta', 10000.0)
        self.max_pos = lcfg.get('max_position_embeddings', 2048)
        rs = lcfg.get('rope_scaling')
        if rs is not None:
            rtype = rs.get('rope_type', rs.get('type'))
            if rtype != 'dynamic':
                raise NotImplementedError(f'rope_scaling {rs}')
            # 'dynamic' NTK only changes inv_freq once seq_len > max_position_embeddings
            self.dynamic_guard = True
        if arch == 'Qwen2ForCausalLM':
            # Qwen2Attention: q/k/v bias=True, o_proj bias=False
            self.qkv_bias = True
            self.o_bias = False
            self.mlp_bias = False
            if lcfg.get('use_sliding_window', False):
                raise NotImplementedError('sliding window attention')
        else:
            self.qkv_bias = bool(lcfg.get('attention_bias', False))
            self.o_bias = bool(lcfg.get('attention_bias', False))
            self.mlp_bias = bool(lcfg.get('mlp_bias', False))
        if lcfg.get('hidden_act', 'silu') != 'silu':
            raise NotImplementedError(lcfg.get('hidden_act'))
        # RoPE inverse frequencies (default rope type), float32
        self.inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float()
                                              / self.head_dim))

    def w(self, name):
        return self.W[self.p + name]

    def wo(self, name):
        return self.W.get(self.p + name)

    def embed(self, input_ids):
        return F.embedding(input_ids, self.w('model.embed_tokens.weight'))

    def rope(self, position_ids):
        # RotaryEmbedding.forward: freqs = inv_freq x positions (float32); emb = cat(freqs, freqs)
        freqs = position_ids.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, inputs_embeds, past=None):
        """inputs_embeds: [T, hidden] for one sequence (batch 1).
        past: list per layer of (k, v) with shape [n_kv, P, head_dim] or None.
        Returns (logits [T, vocab], new_past)."""
        T = inputs_embeds.shape[0]
        P = 0 if past is None else past[0][0].shape[1]
        if getattr(self, 'dynamic_guard', False):
            assert P + T <= self.max_pos, 'dynamic rope scaling would kick in'
        pos = torch.arange(P, P + T)
        cos, sin = self.rope(pos)  # [T, head_dim]
        # Qwen2DecoderLayer / LlamaDecoderLayer stack (refcommon.ops.decoder_layers): q/k/v bias per
        # self.qkv_bias, o_proj bias per self.o_bias, MLP biases per self.mlp_bias
        h, new_past = decoder_layers(inputs_embeds, cos, sin, past, self.W, self.p + 'model.layers.', self.n_layers,
                                     self.n_heads, self.n_kv, self.head_dim, self.eps, qkv_bias=self.qkv_bias,
                                     o_bias=self.o_bias, mlp_bias=self.mlp_bias)
        h = llm_rms_norm(h, self.w('model.norm.weight'), self.eps)
        # InternVLChatConfig forces llm_config.tie_word_embeddings = False -> lm_head is its own weight
        logits = linear(h, self.w('lm_head.weight'))
        return logits.float(), new_past


# ---------------------------------------------------------------------------
# InternLM2ForCausalLM -- internvl_chat/internvl/model/internlm2/modeling_internlm2.py
# (the file InternVL2-8B / InternVL2.5-8B / -26B ship; same code as internlm/internlm2_5-7b-chat)
# ---------------------------------------------------------------------------

def internlm2_split_wqkv(qkv: torch.Tensor, n_heads: int, n_kv: int, head_dim: int):
    """InternLM2Attention.forward's split of the packed projection output (last dim).

        qkv_states = rearrange(qkv_states, 'b q (h gs d) -> b q h gs d', gs=2 + num_key_value_groups, d=head_dim)
        query_states = rearrange(qkv_states[..., :num_key_value_groups, :], 'b q h gs d -> b q (h gs) d')
        key_states = qkv_states[..., -2, :]
        value_states = qkv_states[..., -1, :]

    i.e. the output features come in n_kv groups of (gs * head_dim) rows; group h holds, in order, the
    num_key_value_groups query heads h*G .. h*G+G-1, then key head h, then value head h (G = n_heads // n_kv).
    Works on activations [..., (n_heads + 2 n_kv) * head_dim] and, with the rows as the leading dim, on the
    weight/bias themselves (see internlm2_unpack_wqkv_weight).  Returns q [..., n_heads, D], k, v [..., n_kv, D]."""
    G = n_heads // n_kv
    gs = 2 + G
    x = qkv.reshape(*qkv.shape[:-1], n_kv, gs, head_dim)           # (h gs d) -> h gs d
    q = x[..., :G, :].reshape(*qkv.shape[:-1], n_kv * G, head_dim)   # (h gs) d: query head index = h*G + g
    k = x[..., -2, :]
    v = x[..., -1, :]
    return q, k, v


def internlm2_unpack_wqkv_weight(wqkv: torch.Tensor, n_heads: int, n_kv: int, head_dim: int):
    """Row blocks of wqkv.weight [(n_heads + 2 n_kv) * D, hidden] (or wqkv.bias) as Llama-style
    q_proj [n_heads*D, ...], k_proj [n_kv*D, ...], v_proj [n_kv*D, ...] -- the same layout as
    internlm2_split_wqkv, applied to the output-feature (row) axis."""
    t = wqkv.transpose(0, -1) if wqkv.dim() == 2 else wqkv               # rows last
    q, k, v = internlm2_split_wqkv(t, n_heads, n_kv, head_dim)
    q = q.reshape(*q.shape[:-2], -1)
    k = k.reshape(*k.shape[:-2], -1)
    v = v.reshape(*v.shape[:-2], -1)
    if wqkv.dim() == 2:
        q, k, v = q.transpose(0, -1), k.transpose(0, -1), v.transpose(0, -1)
    return q.contiguous(), k.contiguous(), v.contiguous()


class InternLM2LMRef:
    """InternLM2ForCausalLM (eager attention) for one sequence (batch 1), float32.

    Weight names (prefix 'language_model.'): model.tok_embeddings.weight,
    model.layers.{i}.attention.wqkv.{weight,bias}, model.layers.{i}.attention.wo.{weight,bias},
    model.layers.{i}.feed_forward.{w1,w2,w3}.weight, model.layers.{i}.attention_norm.weight,
    model.layers.{i}.ffn_norm.weight, model.norm.weight, output.weight.
    wqkv / wo carry a bias iff config.bias (InternLM2Config default True; InternLM2.5-7B-chat, the LM of
    InternVL2-8B / InternVL2.5-8B, has bias=false).  The MLP never has biases."""

    def __init__(self, lcfg: dict, W: Dict[str, torch.Tensor], prefix='language_model.'):
        self.cfg = lcfg
        self.W = W
        self.p = prefix
        self.arch = lcfg['architectures'][0]
        if self.arch != 'InternLM2ForCausalLM':
            raise NotImplementedError(self.arch)
        # InternLM2Config defaults (configuration_internlm2.py)
        self.hidden = lcfg.get('hidden_size', 4096)
        self.n_heads = lcfg.get('num_attention_heads', 32)
        self.n_kv = lcfg.get('num_key_value_heads') or self.n_heads
        self.head_dim = self.hidden // self.n_heads          # InternLM2Attention: hidden_size // num_heads
        if self.head_dim * self.n_heads != self.hidden:
            raise ValueError('hidden_size must be divisible by num_heads')
        self.n_layers = lcfg.get('num_hidden_layers', 32)
        self.eps = lcfg.get('rms_norm_eps', 1e-6)
        self.bias = bool(lcfg.get('bias', True))
        self.theta = lcfg.get('rope_theta', 10000)
        self.max_pos = lcfg.get('max_position_embeddings', 2048)
        if lcfg.get('rope_pos_id_version', 'default') != 'default':
            raise NotImplementedError('rope_pos_id_version ' + str(lcfg.get('rope_pos_id_version')))
        if lcfg.get('hidden_act', 'silu') != 'silu':
            raise NotImplementedError(lcfg.get('hidden_act'))
        self.dynamic_guard = False
        rs = lcfg.get('rope_scaling')
        if rs is not None:
            # InternLM2Attention._init_rope reads rope_scaling["type"] / ["factor"]
            if rs.get('type') != 'dynamic':
                raise NotImplementedError(f'rope_scaling {rs}')
            # InternLM2DynamicNTKScalingRotaryEmbedding only changes `base` when the cache is (re)built for
            # seq_len > max_position_embeddings; below that it is InternLM2RotaryEmbedding exactly.
            self.dynamic_guard = True
        # InternLM2RotaryEmbedding: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim)
        self.inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))

    def w(self, name):
        return self.W[self.p + name]

    def embed(self, input_ids):
        return F.embedding(input_ids, self.w('model.tok_embeddings.weight'))

    def rope(self, position_ids):
        # _set_cos_sin_cache: t = arange(seq_len) (float32), freqs = einsum('i,j->ij', t, inv_freq),
        # emb = cat(freqs, freqs); cos_cached/sin_cached then indexed by position_ids (apply_rotary_pos_emb).
        t = position_ids.to(self.inv_freq.dtype)
        freqs = torch.einsum('i,j->ij', t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, inputs_embeds, past=None):
        """inputs_embeds [T, hidden]; past: per layer (k, v) [n_kv, P, D] or None.
        Returns (logits [T, vocab] float32, new_past)."""
        T = inputs_embeds.shape[0]
        P = 0 if past is None else past[0][0].shape[1]
        if self.dynamic_guard:
            assert P + T <= self.max_pos, 'dynamic NTK rope scaling would change the base'
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        G = H // KV
        cos, sin = self.rope(torch.arange(P, P + T))          # [T, D]
        # InternLM2Model._prepare_decoder_attention_mask: additive causal mask (finfo.min above the diagonal,
        # zeros for the past) only when q_len > 1; the all-ones padding mask adds 0.
        mask = None
        if T > 1:
            m = torch.full((T, T), torch.finfo(torch.float32).min)
            cond = torch.arange(T)
            m.masked_fill_(cond < (cond + 1).view(T, 1), 0)
            mask = torch.cat([torch.zeros(T, P), m], dim=-1)   # [T, P+T]
        h = inputs_embeds
        new_past = []
        for li in range(self.n_layers):
            pre = f'model.layers.{li}.'
            # InternLM2DecoderLayer: residual + attention(attention_norm(x)); residual + feed_forward(ffn_norm(x))
            x = llm_rms_norm(h, self.w(pre + 'attention_norm.weight'), self.eps)
            qkv = linear(x, self.w(pre + 'attention.wqkv.weight'),
                         self.w(pre + 'attention.wqkv.bias') if self.bias else None)
            q, k, v = internlm2_split_wqkv(qkv, H, KV, D)      # [T, H, D], [T, KV, D], [T, KV, D]
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
            q = q * cos[None] + rotate_half(q) * sin[None]
            k = k * cos[None] + rotate_half(k) * sin[None]
            if past is not None:
                k = torch.cat([past[li][0], k], dim=1)
                v = torch.cat([past[li][1], v], dim=1)
            new_past.append((k, v))
            S = k.shape[1]
            # repeat_kv: expand(kv, n_rep) + reshape -> head j uses kv head j // n_rep
            kk = k[:, None].expand(KV, G, S, D).reshape(H, S, D)
            vv = v[:, None].expand(KV, G, S, D).reshape(H, S, D)
            attn = torch.matmul(q, kk.transpose(1, 2)) / math.sqrt(D)
            if mask is not None:
                attn = attn + mask[None]
            attn = torch.softmax(attn, dim=-1, dtype=torch.float32).to(q.dtype)
            o = torch.matmul(attn, vv).transpose(0, 1).reshape(T, self.hidden)
            h = h + linear(o, self.w(pre + 'attention.wo.weight'),
                           self.w(pre + 'attention.wo.bias') if self.bias else None)
            x = llm_rms_norm(h, self.w(pre + 'ffn_norm.weight'), self.eps)
            f = pre + 'feed_forward.'
            h = h + linear(F.silu(linear(x, self.w(f + 'w1.weight'))) * linear(x, self.w(f + 'w3.weight')),
                           self.w(f + 'w2.weight'))
        h = llm_rms_norm(h, self.w('model.norm.weight'), self.eps)
        # InternLM2ForCausalLM.output (tie_word_embeddings forced False by InternVLChatConfig); logits.float()
        logits = linear(h, self.w('output.weight'))
        return logits.float(), new_past


# ---------------------------------------------------------------------------
# InternVLChatModel -- modeling_internvl_chat.py
# ---------------------------------------------------------------------------

class InternVLChatRef:
    def __init__(self, model_dir: str):
        with open(os.path.join(model_dir, 'config.json'), encoding='utf-8') as f:
            self.config = json.load(f)
        raw, _ = load_safetensors(os.path.join(model_dir, 'model.safetensors'))
        self.stored_dtypes = {k: str(v.dtype) for k, v in raw.items()}
        self.W = {k: v.float() for k, v in raw.items()}  # compute in float32
        c = self.config
        vc = c['vision_config']
        self.image_size = c.get('force_image_size') or vc['image_size']
        self.patch_size = vc['patch_size']
        self.select_layer = c.get('select_layer', -1)
        self.template = c['template']
        self.downsample_ratio = c.get('downsample_ratio', 0.5)
        self.ps_version = c.get('ps_version', 'v1')
        self.num_image_token = int((self.image_size // self.patch_size) ** 2 * (self.downsample_ratio ** 2))
        self.system_message = c['system_message'] if 'system_message' in c else TEMPLATES[self.template][1]
        self.vit = InternViTRef(vc, self.W)
        if c['llm_config']['architectures'][0] == 'InternLM2ForCausalLM':
            self.lm = InternLM2LMRef(c['llm_config'], self.W)
        else:
            self.lm = DecoderLMRef(c['llm_config'], self.W)
        # mlp1 = Sequential(LayerNorm(vit_hidden * (1/r)^2) [torch default eps 1e-5], Linear, GELU, Linear)
        self.mlp1_eps = 1e-5

    # --- vision ---------------------------------------------------------
    def pixel_shuffle(self, x, scale_factor=0.5):
        n, w, h, c = x.size()
        x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.view(n, int(h * scale_factor), int(w * scale_factor),
                   int(c / (scale_factor * scale_factor)))
        if self.ps_version == 'v1':
            pass  # v1 leaves the result transposed (warning in the original code)
        else:
            x = x.permute(0, 2, 1, 3).contiguous()
        return x

    def extract_feature(self, pixel_values, return_intermediates=False):
        last, states = self.vit.forward(pixel_values)
        if self.select_layer == -1:
            vit_embeds = last
        else:
            vit_embeds = states[self.select_layer]
        selected = vit_embeds
        vit_embeds = vit_embeds[:, 1:, :]
        h = w = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], h, w, -1)
        vit_embeds = self.pixel_shuffle(vit_embeds, scale_factor=self.downsample_ratio)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        shuffled = vit_embeds
        x = layer_norm(vit_embeds, self.W['mlp1.0.weight'], self.W['mlp1.0.bias'], self.mlp1_eps)
        x = linear(x, self.W['mlp1.1.weight'], self.W['mlp1.1.bias'])
        x = gelu(x)
        x = linear(x, self.W['mlp1.3.weight'], self.W['mlp1.3.bias'])
        if return_intermediates:
            return x, {'vision_embeddings': states[0], 'vision_selected_hidden': selected,
                       'pixel_shuffled': shuffled}
        return x

    # --- language -------------------------------------------------------
    def input_embeds(self, input_ids: torch.Tensor, img_context_token_id: int,
                     vit_embeds: Optional[torch.Tensor]):
        # InternVLChatModel.generate: embeddings, then rows where id == IMG_CONTEXT
        # are overwritten, in order, by vit_embeds.reshape(-1, C)
        emb = self.lm.embed(input_ids).clone()
        if vit_embeds is not None:
            selected = input_ids == img_context_token_id
            assert selected.sum() != 0
            C = emb.shape[-1]
            flat = vit_embeds.reshape(-1, C)
            assert int(selected.sum()) == flat.shape[0], (int(selected.sum()), flat.shape)
            emb[selected] = flat
        return emb

    def prompt_logits(self, input_ids, img_context_token_id, pixel_values=None):
        vit = self.extract_feature(pixel_values) if pixel_values is not None else None
        emb = self.input_embeds(input_ids, img_context_token_id, vit)
        logits, _ = self.lm.forward(emb)
        return logits

    def greedy_generate(self, input_ids, img_context_token_id, pixel_values=None,
                        max_new_tokens=8, eos_token_id=None, use_cache=True):
        """HF generate(do_sample=False, num_beams=1) on inputs_embeds: argmax each
        step, stop after emitting eos_token_id. Returns (new_ids, step_logits)."""
        vit = self.extract_feature(pixel_values) if pixel_values is not None else None
        emb = self.input_embeds(input_ids, img_context_token_id, vit)
        out: List[int] = []
        step_logits = []
        if use_cache:
            logits, past = self.lm.forward(emb)
            for _ in range(max_new_tokens):
                last = logits[-1]
                step_logits.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if eos_token_id is not None and nxt == eos_token_id:
                    break
                logits, past = self.lm.forward(self.lm.embed(torch.tensor([nxt])), past)
        else:
            seq = emb
            for _ in range(max_new_tokens):
                logits, _ = self.lm.forward(seq)
                last = logits[-1]
                step_logits.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if eos_token_id is not None and nxt == eos_token_id:
                    break
                seq = torch.cat([seq, self.lm.embed(torch.tensor([nxt]))], dim=0)
        return out, torch.stack(step_logits)
