"""Independent plain-PyTorch reference for Qwen2-VL and Qwen2.5-VL checkpoints.

Written only from the HF transformers source (no `transformers`, no `safetensors`
package is imported).  The code followed, read from huggingface/transformers:

  * models/qwen2_vl/modeling_qwen2_vl.py        at commit 00b676f8f048 (the 4.53/4.54
    development line: `rotary_pos_emb` still accepted "until v4.54", masking_utils,
    `_checkpoint_conversion_mapping`, eager vision attention split per cu_seqlens chunk)
  * models/qwen2_5_vl/modeling_qwen2_5_vl.py    at the same commit 00b676f8f048
  * models/qwen2_5_vl/processing_qwen2_5_vl.py  at commit 00368c17bfb3 (4.52/4.53 line)
  * models/qwen2_vl/image_processing_qwen2_vl.py at commit cb0fc56f3cac (the slow, PIL based
    Qwen2VLImageProcessor; smart_resize / _preprocess are unchanged through 4.5x)
  * image_transforms.py (resize / rescale / normalize / to_pil_image)
  * models/qwen2_vl/configuration_qwen2_vl.py and qwen2_5_vl/configuration_qwen2_5_vl.py
    (read at a later commit 018c8e0394c4; used only for the config key semantics, which are
    the same in 4.5x: the hub's top-level text keys feed the text config, rope_scaling
    {"type": "mrope", "mrope_section": [...]} means default RoPE + mrope_section,
    vision defaults hidden_act="quick_gelu" (Qwen2-VL), in_channels=3).

We follow "transformers 4.53" semantics throughout (see README.md for the list of places
where versions differ and what was chosen).

Everything is computed in float32; bf16 checkpoints are upcast to float32 on load.
Tokenization is NOT done here (tools/reference/common/tokenize.mjs uses tokenizers.js); the chat
template is rendered here by hand (render_chat_prompt) and cross-checked against @huggingface/jinja
(tools/reference/common/render_template.mjs) by make_fixtures.py.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ---------------------------------------------------------------------------
# safetensors I/O (hand written: 8-byte LE header length, JSON header, data) and the small building
# blocks live in tools/reference/common/refcommon, shared with tools/reference/internvl and internvl-hf.
# ---------------------------------------------------------------------------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from refcommon.safetensors_io import load_safetensors, save_safetensors  # noqa: E402,F401
from refcommon.ops import decoder_layers, layer_norm, rms_norm, rotate_half  # noqa: E402,F401


# ---------------------------------------------------------------------------
# Image processor -- Qwen2VLImageProcessor (slow, PIL) in image_processing_qwen2_vl.py,
# with image_transforms.resize / rescale / normalize.
# ---------------------------------------------------------------------------

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]   # image_utils.OPENAI_CLIP_MEAN
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]    # image_utils.OPENAI_CLIP_STD


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 14 * 14 * 4 * 1280) -> Tuple[int, int]:
    """image_processing_qwen2_vl.smart_resize (verbatim logic)."""
    if height < factor or width < factor:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    elif max(height, width) / min(height, width) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor      # Python round: banker's rounding on .5
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def preprocess_image(image: Image.Image, pp: dict, return_intermediates: bool = False):
    """Qwen2VLImageProcessor._preprocess for ONE image (videos=None).

    pp = preprocessor_config.json dict.  Steps (all as in the slow processor):
      convert_to_rgb -> to_numpy_array (uint8 HWC)
      smart_resize(h, w, factor=patch_size*merge_size, min_pixels, max_pixels)
      image_transforms.resize: uint8 array -> PIL.Image.fromarray -> .resize((w, h), resample,
          reducing_gap=None) -> np.array (uint8, no rescale because input was uint8)
      rescale: image.astype(float64) * rescale_factor, then .astype(float32)
      normalize: float32 (image - mean) / std with mean/std as float32 arrays
      to CHW; a single image is repeated to temporal_patch_size frames; then
      reshape(grid_t, tps, C, gh/m, m, p, gw/m, m, p).transpose(0,3,6,4,7,2,1,5,8)
      .reshape(grid_t*gh*gw, C*tps*p*p)
    Returns (pixel_values float32 [N, C*tps*p*p], (grid_t, grid_h, grid_w), (resized_h, resized_w)).
    """
    patch_size = pp.get("patch_size", 14)
    merge_size = pp.get("merge_size", 2)
    tps = pp.get("temporal_patch_size", 2)
    size = pp.get("size") or {}
    min_pixels = pp.get("min_pixels", size.get("shortest_edge", 56 * 56))
    max_pixels = pp.get("max_pixels", size.get("longest_edge", 28 * 28 * 1280))
    resample = pp.get("resample", 3)  # PILImageResampling.BICUBIC == 3
    rescale_factor = pp.get("rescale_factor", 1 / 255)
    mean = pp.get("image_mean", OPENAI_CLIP_MEAN)
    std = pp.get("image_std", OPENAI_CLIP_STD)
    assert pp.get("do_resize", True) and pp.get("do_rescale", True) and pp.get("do_normalize", True)

    if pp.get("do_convert_rgb", True) and image.mode != "RGB":
        image = image.convert("RGB")
    arr = np.array(image)                                   # uint8 HWC
    height, width = arr.shape[:2]
    rh, rw = smart_resize(height, width, factor=patch_size * merge_size,
                          min_pixels=min_pixels, max_pixels=max_pixels)
    pil = Image.fromarray(arr.astype(np.uint8))
    resized = np.array(pil.resize((rw, rh), resample=resample, reducing_gap=None))   # uint8 HWC
    scaled = (resized.astype(np.float64) * rescale_factor).astype(np.float32)
    mean32 = np.array(mean, dtype=np.float32)
    std32 = np.array(std, dtype=np.float32)
    normed = (scaled - mean32) / std32                      # float32, channels last
    chw = np.ascontiguousarray(normed.transpose(2, 0, 1))   # to_channel_dimension_format(FIRST)

    patches = np.array([chw])                               # [1, C, H, W]
    if patches.shape[0] % tps != 0:                         # single image -> tps frames
        repeats = np.repeat(patches[-1][np.newaxis], tps - 1, axis=0)
        patches = np.concatenate([patches, repeats], axis=0)
    channel = patches.shape[1]
    grid_t = patches.shape[0] // tps
    grid_h, grid_w = rh // patch_size, rw // patch_size
    patches = patches.reshape(grid_t, tps, channel, grid_h // merge_size, merge_size, patch_size,
                              grid_w // merge_size, merge_size, patch_size)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, channel * tps * patch_size * patch_size)
    pv = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
    if return_intermediates:
        return pv, (grid_t, grid_h, grid_w), (rh, rw), {"resized_uint8": resized, "normalized_hwc": normed}
    return pv, (grid_t, grid_h, grid_w), (rh, rw)


# ---------------------------------------------------------------------------
# Chat template + processor token expansion
# ---------------------------------------------------------------------------

DEFAULT_SYSTEM = "You are a helpful assistant."
IMAGE_PAD = "<|image_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"


def render_chat_prompt(messages: List[dict], add_generation_prompt: bool = True,
                       add_vision_id: bool = False) -> str:
    """Hand port of the Qwen2-VL / Qwen2.5-VL Instruct chat_template.json:

    {% for message in messages %}{% if loop.first and message['role'] != 'system' %}
      <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n{% endif %}
    <|im_start|>{{ role }}\\n  then content: a string + <|im_end|>\\n, or for a list each item:
      image (type=='image' or key 'image'/'image_url') -> [Picture n: ]<|vision_start|><|image_pad|><|vision_end|>
      video -> [Video n: ]<|vision_start|><|video_pad|><|vision_end|>
      'text' in item -> item['text']
    then <|im_end|>\\n; finally <|im_start|>assistant\\n when add_generation_prompt."""
    out = []
    img_n = vid_n = 0
    for i, m in enumerate(messages):
        if i == 0 and m["role"] != "system":
            out.append("<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n")
        out.append("<|im_start|>" + m["role"] + "\n")
        c = m["content"]
        if isinstance(c, str):
            out.append(c + "<|im_end|>\n")
        else:
            for item in c:
                if item.get("type") == "image" or "image" in item or "image_url" in item:
                    img_n += 1
                    if add_vision_id:
                        out.append(f"Picture {img_n}: ")
                    out.append(VISION_START + IMAGE_PAD + VISION_END)
                elif item.get("type") == "video" or "video" in item:
                    vid_n += 1
                    if add_vision_id:
                        out.append(f"Video {vid_n}: ")
                    out.append(VISION_START + "<|video_pad|>" + VISION_END)
                elif "text" in item:
                    out.append(item["text"])
            out.append("<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def expand_image_tokens(text: str, image_grid_thws: Sequence[Sequence[int]], merge_size: int) -> str:
    """Qwen2VLProcessor / Qwen2_5_VLProcessor.__call__: each <|image_pad|> (in order) becomes
    grid_t*grid_h*grid_w // merge_size**2 copies of <|image_pad|> (via <|placeholder|>)."""
    merge_length = merge_size ** 2
    index = 0
    while IMAGE_PAD in text:
        t, h, w = image_grid_thws[index]
        n = (t * h * w) // merge_length
        text = text.replace(IMAGE_PAD, "<|placeholder|>" * n, 1)
        index += 1
    return text.replace("<|placeholder|>", IMAGE_PAD)


# ---------------------------------------------------------------------------
# Small building blocks (rms_norm = Qwen2RMSNorm: float32 variance, weight * x.to(input_dtype);
# layer_norm; rotate_half -- from refcommon.ops)
# ---------------------------------------------------------------------------

def quick_gelu(x):
    # activations.QuickGELUActivation: x * sigmoid(1.702 * x)
    return x * torch.sigmoid(1.702 * x)


ACT = {"quick_gelu": quick_gelu, "silu": F.silu, "gelu": F.gelu}


# ---------------------------------------------------------------------------
# Vision encoders
# ---------------------------------------------------------------------------

class _VisionBase:
    """Shared parts of Qwen2VisionTransformerPretrainedModel and
    Qwen2_5_VisionTransformerPretrainedModel."""

    prefix = "visual."

    def w(self, name):
        return self.W[self.prefix + name]

    def patch_embed(self, pixel_values):
        # PatchEmbed / Qwen2_5_VisionPatchEmbed: view(-1, C, tps, p, p) -> Conv3d(kernel=stride=[tps,p,p],
        # bias=False) -> view(-1, embed_dim)
        x = pixel_values.view(-1, self.in_channels, self.tps, self.patch_size, self.patch_size)
        x = F.conv3d(x, self.w("patch_embed.proj.weight"), None,
                     stride=(self.tps, self.patch_size, self.patch_size))
        return x.view(-1, self.embed_dim)

    def rot_pos_emb(self, grid_thw):
        # rot_pos_emb: (h, w) position of every patch in merge-window order, looked up in
        # VisionRotaryEmbedding(head_dim // 2)(max_grid_size), flattened -> [N, head_dim/2]
        m = self.merge
        pos_ids = []
        for t, h, w in grid_thw:
            hpos = torch.arange(h).unsqueeze(1).expand(-1, w)
            hpos = hpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wpos = torch.arange(w).unsqueeze(0).expand(h, -1)
            wpos = wpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            pos_ids.append(torch.stack([hpos, wpos], dim=-1).repeat(t, 1))
        pos_ids = torch.cat(pos_ids, dim=0)
        max_grid = int(max(max(h, w) for _, h, w in grid_thw))
        dim = self.head_dim // 2
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        seq = torch.arange(max_grid, dtype=inv_freq.dtype)
        freqs_full = torch.outer(seq, inv_freq)
        return freqs_full[pos_ids].flatten(1)

    @staticmethod
    def rotary_cos_sin(rot):
        # emb = cat(rotary_pos_emb, rotary_pos_emb); position_embeddings = (emb.cos(), emb.sin())
        emb = torch.cat((rot, rot), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def full_cu_seqlens(grid_thw):
        # cu_seqlens = cumsum of h*w repeated t times (one chunk per frame), with a leading 0
        lens = [h * w for t, h, w in grid_thw for _ in range(t)]
        cu = [0]
        for n in lens:
            cu.append(cu[-1] + n)
        return cu

    def attention(self, x, blk, cu_seqlens, cos, sin):
        # VisionAttention / Qwen2_5_VLVisionAttention, eager path: packed qkv (bias) ->
        # reshape(S, 3, H, D).permute(1,0,2,3) -> rotary (float32) -> per-chunk softmax attention
        # (chunks from cu_seqlens, no mask inside a chunk) -> proj
        pre = f"blocks.{blk}.attn."
        S = x.shape[0]
        qkv = F.linear(x, self.w(pre + "qkv.weight"), self.w(pre + "qkv.bias"))
        q, k, v = qkv.reshape(S, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        # apply_rotary_pos_emb_vision: cos/sin [S, D] unsqueeze(-2) -> [S, 1, D]
        c, s = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
        q = (q.float() * c) + (rotate_half(q.float()) * s)
        k = (k.float() * c) + (rotate_half(k.float()) * s)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)   # [H, S, D]
        scaling = self.head_dim ** -0.5
        outs = []
        bounds = [int(b) for b in cu_seqlens]
        for a, b in zip(bounds[:-1], bounds[1:]):
            qq, kk, vv = q[:, a:b], k[:, a:b], v[:, a:b]
            att = torch.matmul(qq, kk.transpose(1, 2)) * scaling
            att = torch.softmax(att, dim=-1, dtype=torch.float32)
            outs.append(torch.matmul(att, vv).transpose(0, 1))             # [len, H, D]
        o = torch.cat(outs, dim=0).reshape(S, -1)
        return F.linear(o, self.w(pre + "proj.weight"), self.w(pre + "proj.bias"))


class Qwen2VisionRef(_VisionBase):
    """Qwen2VisionTransformerPretrainedModel (modeling_qwen2_vl.py)."""

    def __init__(self, vc: dict, W):
        self.W = W
        self.embed_dim = vc["embed_dim"]
        self.out_dim = vc["hidden_size"]                 # PatchMerger dim = vision_config.hidden_size
        self.num_heads = vc["num_heads"]
        self.head_dim = self.embed_dim // self.num_heads
        self.depth = vc["depth"]
        self.mlp_hidden = int(self.embed_dim * vc.get("mlp_ratio", 4))
        self.act = ACT[vc.get("hidden_act", "quick_gelu")]   # Qwen2VLVisionConfig default quick_gelu
        self.in_channels = vc.get("in_channels", vc.get("in_chans", 3))
        self.patch_size = vc["patch_size"]
        self.tps = vc["temporal_patch_size"]
        self.merge = vc["spatial_merge_size"]

    def block(self, x, i, cu_seqlens, cos, sin):
        # Qwen2VLVisionBlock: LayerNorm(eps 1e-6) pre-norm, QuickGELU MLP fc1/fc2
        p = f"blocks.{i}."
        x = x + self.attention(layer_norm(x, self.w(p + "norm1.weight"), self.w(p + "norm1.bias"), 1e-6),
                               i, cu_seqlens, cos, sin)
        h = layer_norm(x, self.w(p + "norm2.weight"), self.w(p + "norm2.bias"), 1e-6)
        h = F.linear(h, self.w(p + "mlp.fc1.weight"), self.w(p + "mlp.fc1.bias"))
        h = F.linear(self.act(h), self.w(p + "mlp.fc2.weight"), self.w(p + "mlp.fc2.bias"))
        return x + h

    def merger(self, x):
        # PatchMerger: ln_q = LayerNorm(embed_dim, eps 1e-6); view(-1, embed_dim*m^2); Linear, GELU(erf), Linear
        x = layer_norm(x, self.w("merger.ln_q.weight"), self.w("merger.ln_q.bias"), 1e-6)
        x = x.view(-1, self.embed_dim * self.merge ** 2)
        x = F.linear(x, self.w("merger.mlp.0.weight"), self.w("merger.mlp.0.bias"))
        x = F.gelu(x)
        return F.linear(x, self.w("merger.mlp.2.weight"), self.w("merger.mlp.2.bias"))

    def forward(self, pixel_values, grid_thw, return_intermediates=False, force_full_attention=False):
        x = self.patch_embed(pixel_values)
        inter = {"patch_embed": x}
        rot = self.rot_pos_emb(grid_thw)
        cos, sin = self.rotary_cos_sin(rot)
        cu = self.full_cu_seqlens(grid_thw)
        for i in range(self.depth):
            x = self.block(x, i, cu, cos, sin)
            inter[f"block{i}"] = x
        inter["blocks_out"] = x
        inter["rotary_freqs"] = rot
        out = self.merger(x)
        inter["meta"] = {"cu_seqlens": cu}
        return (out, inter) if return_intermediates else out


class Qwen25VisionRef(_VisionBase):
    """Qwen2_5_VisionTransformerPretrainedModel (modeling_qwen2_5_vl.py)."""

    def __init__(self, vc: dict, W):
        self.W = W
        self.embed_dim = vc["hidden_size"]
        self.out_dim = vc["out_hidden_size"]
        self.num_heads = vc["num_heads"]
        self.head_dim = self.embed_dim // self.num_heads
        self.depth = vc["depth"]
        self.act = ACT[vc.get("hidden_act", "silu")]
        self.in_channels = vc.get("in_channels", vc.get("in_chans", 3))
        self.patch_size = vc["patch_size"]
        self.tps = vc["temporal_patch_size"]
        self.merge = vc["spatial_merge_size"]
        self.window_size = vc["window_size"]
        self.fullatt = list(vc["fullatt_block_indexes"])
        self.unit = self.merge * self.merge

    def get_window_index(self, grid_thw):
        # get_window_index (verbatim logic, including pad = vws - n % vws, which adds a fully
        # padded row/column when n % vws == 0; empty windows vanish via unique_consecutive)
        window_index = []
        cu_window_seqlens = [0]
        window_index_id = 0
        vws = self.window_size // self.merge // self.patch_size
        for t, h, w in grid_thw:
            lh, lw = h // self.merge, w // self.merge
            index = torch.arange(t * lh * lw).reshape(t, lh, lw)
            pad_h = vws - lh % vws
            pad_w = vws - lw % vws
            nwh = (lh + pad_h) // vws
            nww = (lw + pad_w) // vws
            ip = F.pad(index, (0, pad_w, 0, pad_h), "constant", -100)
            ip = ip.reshape(t, nwh, vws, nww, vws).permute(0, 1, 3, 2, 4).reshape(t, nwh * nww, vws, vws)
            seqlens = (ip != -100).sum([2, 3]).reshape(-1)
            ip = ip.reshape(-1)
            window_index.append(ip[ip != -100] + window_index_id)
            tmp = seqlens.cumsum(0) * self.unit + cu_window_seqlens[-1]
            cu_window_seqlens.extend(tmp.tolist())
            window_index_id += t * lh * lw
        return torch.cat(window_index, dim=0), cu_window_seqlens

    def block(self, x, i, cu_seqlens, cos, sin):
        # Qwen2_5_VLVisionBlock: RMSNorm(eps 1e-6) pre-norm; Qwen2_5_VLMLP(bias=True):
        # down(act(gate(x)) * up(x))
        p = f"blocks.{i}."
        x = x + self.attention(rms_norm(x, self.w(p + "norm1.weight"), 1e-6), i, cu_seqlens, cos, sin)
        h = rms_norm(x, self.w(p + "norm2.weight"), 1e-6)
        g = F.linear(h, self.w(p + "mlp.gate_proj.weight"), self.w(p + "mlp.gate_proj.bias"))
        u = F.linear(h, self.w(p + "mlp.up_proj.weight"), self.w(p + "mlp.up_proj.bias"))
        d = F.linear(self.act(g) * u, self.w(p + "mlp.down_proj.weight"), self.w(p + "mlp.down_proj.bias"))
        return x + d

    def merger(self, x):
        # Qwen2_5_VLPatchMerger: ln_q = Qwen2RMSNorm(context_dim, eps 1e-6); Linear, GELU(erf), Linear
        x = rms_norm(x, self.w("merger.ln_q.weight"), 1e-6).view(-1, self.embed_dim * self.unit)
        x = F.linear(x, self.w("merger.mlp.0.weight"), self.w("merger.mlp.0.bias"))
        x = F.gelu(x)
        return F.linear(x, self.w("merger.mlp.2.weight"), self.w("merger.mlp.2.bias"))

    def forward(self, pixel_values, grid_thw, return_intermediates=False, force_full_attention=False):
        x = self.patch_embed(pixel_values)
        inter = {"patch_embed": x}
        rot = self.rot_pos_emb(grid_thw)
        window_index, cu_window = self.get_window_index(grid_thw)
        cu_window = torch.unique_consecutive(torch.tensor(cu_window, dtype=torch.int32)).tolist()
        S = x.shape[0]
        # reorder patches (in groups of merge^2) into window order
        x = x.reshape(S // self.unit, self.unit, -1)[window_index].reshape(S, -1)
        rot_w = rot.reshape(S // self.unit, self.unit, -1)[window_index].reshape(S, -1)
        cos, sin = self.rotary_cos_sin(rot_w)
        cu_full = self.full_cu_seqlens(grid_thw)
        reverse = torch.argsort(window_index)

        def unwindow(y):  # back to the original patch order (for the debugging dumps only)
            return y.reshape(S // self.unit, self.unit, -1)[reverse].reshape(S, -1)

        for i in range(self.depth):
            cu_now = cu_full if (i in self.fullatt or force_full_attention) else cu_window
            x = self.block(x, i, cu_now, cos, sin)
            inter[f"block{i}"] = unwindow(x)
        inter["blocks_out"] = unwindow(x)
        inter["rotary_freqs"] = rot
        out = self.merger(x)
        out = out[reverse, :]
        inter["meta"] = {"window_index": window_index.tolist(), "cu_window_seqlens": cu_window,
                         "cu_seqlens": cu_full}
        return (out, inter) if return_intermediates else out


# ---------------------------------------------------------------------------
# 3-D position ids -- Qwen2VLModel.get_rope_index / Qwen2_5_VLModel.get_rope_index
# ---------------------------------------------------------------------------

def get_rope_index(input_ids: Sequence[int], image_grid_thw: Optional[Sequence[Sequence[int]]],
                   image_token_id: int, video_token_id: int, vision_start_token_id: int,
                   spatial_merge_size: int, variant: str, tokens_per_second: Optional[float] = None):
    """Batch-1, no padding, images only.  Returns (position_ids LongTensor [3, T], delta int).

    Text runs get arange positions (same in all 3 rows) continuing from max(previous)+1;
    an image of llm grid (t, h/m, w/m) gets rows (t_index, h_index, w_index) + text_len + st_idx.
    For Qwen2.5-VL, t_index = arange(t) * second_per_grid_t * tokens_per_second with
    second_per_grid_t = 0 for images (so always 0).  Without image_grid_thw: arange, delta 0."""
    T = len(input_ids)
    if image_grid_thw is None:
        pos = torch.arange(T).view(1, -1).expand(3, -1).clone()
        return pos, 0
    ids = torch.tensor(list(input_ids), dtype=torch.long)
    vs = torch.argwhere(ids == vision_start_token_id).squeeze(1)
    vision_tokens = ids[vs + 1]
    image_nums = int((vision_tokens == image_token_id).sum())
    video_nums = int((vision_tokens == video_token_id).sum())
    assert video_nums == 0, "videos are not part of this reference"
    input_tokens = ids.tolist()
    llm_pos_ids_list = []
    st = 0
    image_index = 0
    remain_images = image_nums
    for _ in range(image_nums + video_nums):
        if image_token_id in input_tokens and remain_images > 0:
            ed = input_tokens.index(image_token_id, st)
        else:
            raise AssertionError("no image token left")
        t, h, w = image_grid_thw[image_index]
        image_index += 1
        remain_images -= 1
        lt, lh, lw = int(t), int(h) // spatial_merge_size, int(w) // spatial_merge_size
        text_len = ed - st
        st_idx = int(llm_pos_ids_list[-1].max()) + 1 if llm_pos_ids_list else 0
        llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
        if variant == "qwen2_5_vl":
            second_per_grid_t = 0  # images
            rng = torch.arange(lt).view(-1, 1).expand(-1, lh * lw)
            t_index = (rng * torch.as_tensor(second_per_grid_t, dtype=rng.dtype)
                       * tokens_per_second).long().flatten()
        else:
            t_index = torch.arange(lt).view(-1, 1).expand(-1, lh * lw).flatten()
        h_index = torch.arange(lh).view(1, -1, 1).expand(lt, -1, lw).flatten()
        w_index = torch.arange(lw).view(1, 1, -1).expand(lt, lh, -1).flatten()
        llm_pos_ids_list.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
        st = ed + lt * lh * lw
    if st < len(input_tokens):
        st_idx = int(llm_pos_ids_list[-1].max()) + 1 if llm_pos_ids_list else 0
        text_len = len(input_tokens) - st
        llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
    pos = torch.cat(llm_pos_ids_list, dim=1).reshape(3, -1).long()
    delta = int(pos.max()) + 1 - T
    return pos, delta


# ---------------------------------------------------------------------------
# Qwen2 text model with M-RoPE -- Qwen2VLTextModel / Qwen2_5_VLTextModel
# ---------------------------------------------------------------------------

class MRopeTextRef:
    def __init__(self, cfg: dict, W, tie: bool):
        self.W = W
        self.hidden = cfg["hidden_size"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        # Qwen2VLAttention: head_dim = hidden_size // num_heads (a config head_dim is not read)
        self.head_dim = self.hidden // self.n_heads
        self.n_layers = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        self.theta = cfg.get("rope_theta", 1000000.0)
        rs = cfg["rope_scaling"]
        rtype = rs.get("rope_type", rs.get("type"))
        if rtype not in ("mrope", "default"):
            raise NotImplementedError(rs)
        self.mrope_section = list(rs["mrope_section"])
        assert sum(self.mrope_section) == self.head_dim // 2, (self.mrope_section, self.head_dim)
        if cfg.get("use_sliding_window", False):
            raise NotImplementedError("sliding window")
        if cfg.get("hidden_act", "silu") != "silu":
            raise NotImplementedError(cfg.get("hidden_act"))
        # default rope init (modeling_rope_utils._compute_default_rope_parameters), attention_scaling 1.0
        self.inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float()
                                              / self.head_dim))
        self.tie = tie

    def w(self, name):
        return self.W[name]

    def embed(self, ids):
        return F.embedding(torch.as_tensor(ids, dtype=torch.long), self.w("model.embed_tokens.weight"))

    def rope(self, position_ids):
        # Qwen2VLRotaryEmbedding.forward: freqs[r] = inv_freq x position_ids[r] for r in (t, h, w);
        # emb = cat(freqs, freqs) -> cos/sin [3, T, head_dim]
        freqs = position_ids.float()[:, :, None] * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        # apply_multimodal_rotary_pos_emb: split the last dim into mrope_section*2 chunks,
        # chunk i takes row i % 3 (0 = temporal, 1 = height, 2 = width)
        sec = self.mrope_section * 2
        cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1)
        sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1)
        return cos, sin  # [T, head_dim]

    def forward(self, inputs_embeds, position_ids, past=None):
        """inputs_embeds [T, H]; position_ids [3, T]; past: per layer (k, v) [n_kv, P, D].
        Eager attention (Qwen2VLAttention + eager_attention_forward): q/k/v with bias, o_proj
        without, GQA via repeat_kv, scale head_dim^-0.5, causal mask, float32 softmax."""
        cos, sin = self.rope(position_ids)
        # Qwen2VLDecoderLayer stack (refcommon.ops.decoder_layers): q/k/v with bias, o_proj and MLP without
        h, new_past = decoder_layers(inputs_embeds, cos, sin, past, self.W, "model.layers.", self.n_layers,
                                     self.n_heads, self.n_kv, self.head_dim, self.eps, qkv_bias=True)
        h = rms_norm(h, self.w("model.norm.weight"), self.eps)
        head = self.w("model.embed_tokens.weight") if self.tie else self.w("lm_head.weight")
        return F.linear(h, head).float(), new_past


# ---------------------------------------------------------------------------
# Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration
# ---------------------------------------------------------------------------

class QwenVLRef:
    def __init__(self, model_dir: str):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)
        c = self.config
        self.model_type = c["model_type"]
        assert self.model_type in ("qwen2_vl", "qwen2_5_vl"), self.model_type
        raw, _ = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.stored_dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in raw.items()}
        self.W = {k: v.float() for k, v in raw.items()}
        # Text keys: hub configs keep them at the top level; newer save_pretrained writes text_config.
        tc = dict(c.get("text_config") or c)
        # tie_word_embeddings: PretrainedConfig default True when absent (the modeling class
        # declares _tied_weights_keys = ["lm_head.weight"])
        self.tie = bool(c.get("tie_word_embeddings", tc.get("tie_word_embeddings", True)))
        if not self.tie:
            assert "lm_head.weight" in self.W, "untied config but no lm_head.weight"
        vc = c["vision_config"]
        self.visual = Qwen2VisionRef(vc, self.W) if self.model_type == "qwen2_vl" else Qwen25VisionRef(vc, self.W)
        self.lm = MRopeTextRef(tc, self.W, self.tie)
        self.image_token_id = c["image_token_id"]
        self.video_token_id = c["video_token_id"]
        self.vision_start_token_id = c["vision_start_token_id"]
        self.merge = vc["spatial_merge_size"]
        self.tokens_per_second = vc.get("tokens_per_second", 4)   # Qwen2_5_VLVisionConfig default 4

    def rope_index(self, ids, grid_thw):
        return get_rope_index(ids, grid_thw, self.image_token_id, self.video_token_id,
                              self.vision_start_token_id, self.merge, self.model_type, self.tokens_per_second)

    def image_features(self, pixel_values, grid_thw, return_intermediates=False, **kw):
        return self.visual.forward(pixel_values, grid_thw, return_intermediates=return_intermediates, **kw)

    def inputs_embeds(self, ids, image_embeds=None):
        # get_input_embeddings()(input_ids), then masked_scatter of the image features over the
        # positions where input_ids == image_token_id (row-major order)
        emb = self.lm.embed(ids).clone()
        if image_embeds is not None:
            mask = torch.as_tensor(ids) == self.image_token_id
            if int(mask.sum()) != image_embeds.shape[0]:
                raise ValueError(f"Image features and image tokens do not match: tokens: {int(mask.sum())}, "
                                 f"features {image_embeds.shape[0]}")
            emb[mask] = image_embeds
        return emb

    def prompt_forward(self, ids, pixel_values=None, grid_thw=None):
        img = self.image_features(pixel_values, grid_thw) if pixel_values is not None else None
        emb = self.inputs_embeds(ids, img)
        pos, delta = self.rope_index(ids, grid_thw if pixel_values is not None else None)
        logits, past = self.lm.forward(emb, pos)
        return logits, past, pos, delta

    def greedy_generate(self, ids, pixel_values=None, grid_thw=None, max_new_tokens=8,
                        eos_token_ids=(), use_cache=True):
        """GenerationMixin greedy search (do_sample=False, num_beams=1).
        use_cache=True: prefill with get_rope_index positions, then each new token at cache
        position P gets position P + rope_deltas in all three rows (Qwen2VLModel.forward).
        use_cache=False: every step re-runs the whole model on prompt + generated tokens,
        recomputing get_rope_index (and the vision tower) from scratch."""
        ids = list(ids)
        out, step_logits = [], []
        img = self.image_features(pixel_values, grid_thw) if pixel_values is not None else None
        g = grid_thw if pixel_values is not None else None
        if use_cache:
            emb = self.inputs_embeds(ids, img)
            pos, delta = self.rope_index(ids, g)
            logits, past = self.lm.forward(emb, pos)
            P = len(ids)
            for _ in range(max_new_tokens):
                last = logits[-1]
                step_logits.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if nxt in eos_token_ids:
                    break
                p = torch.full((3, 1), P + delta, dtype=torch.long)
                logits, past = self.lm.forward(self.lm.embed([nxt]), p, past)
                P += 1
        else:
            for _ in range(max_new_tokens):
                seq = ids + out
                emb = self.inputs_embeds(seq, img)
                pos, _ = self.rope_index(seq, g)
                logits, _ = self.lm.forward(emb, pos)
                last = logits[-1]
                step_logits.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if nxt in eos_token_ids:
                    break
        return out, torch.stack(step_logits)
