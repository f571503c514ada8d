"""Independent plain-PyTorch reference for InternVL checkpoints in transformers' native "-hf" layout
(InternVLForConditionalGeneration, model_type "internvl", e.g. OpenGVLab/InternVL3-1B-hf).

No `transformers`, no `safetensors` package: everything below is re-implemented from the
transformers source, v4.52 line (the line that wrote the OpenGVLab/InternVL3-*-hf hub files,
whose config.json / generation_config.json say "transformers_version": "4.52.0.dev0"):

  * src/transformers/models/internvl/modeling_internvl.py, blob 00779a6b (4.52 layout:
    InternVLForConditionalGeneration -> .model (InternVLModel: vision_tower, multi_modal_projector,
    language_model) + .lm_head):
      InternVLVisionEmbeddings (+ interpolate_pos_encoding), InternVLVisionPatchEmbeddings,
      InternVLVisionAttention + eager_attention_forward, InternVLVisionRMSNorm, InternVLVisionMLP,
      InternVLVisionLayer, InternVLVisionEncoder, InternVLVisionModel, InternVLMultiModalProjector,
      InternVLModel.get_image_features / pixel_shuffle / forward (masked_scatter at image_token_id),
      InternVLForConditionalGeneration.forward / prepare_inputs_for_generation.
  * src/transformers/models/internvl/configuration_internvl.py (v4 InternVLVisionConfig /
    InternVLConfig __init__ defaults).
  * src/transformers/models/internvl/processing_internvl.py (4.52 InternVLProcessor:
    image_token = tokenizer.context_image_token, _insert_media_placeholders,
    InternVLProcessorKwargs._defaults images_kwargs crop_to_patches=True).
  * src/transformers/models/got_ocr2/image_processing_got_ocr2.py (GotOcr2ImageProcessor:
    get_all_supported_aspect_ratios, get_optimal_tiled_canvas, crop_image_to_patches, preprocess)
    and image_processing_got_ocr2_fast.py (GotOcr2ImageProcessorFast, the class the hub's
    preprocessor_config.json names) + image_transforms.resize / rescale / normalize.
  * src/transformers/models/internvl/convert_internvl_weights_to_hf.py (key mapping original -> -hf).
  * The Qwen2 text model: transformers models/qwen2/modeling_qwen2.py (Qwen2Model, Qwen2Attention with
    q/k/v bias, eager attention with float32 softmax, repeat_kv, rotate_half RoPE, Qwen2RMSNorm,
    Qwen2MLP) and modeling_rope_utils.py (_compute_default_rope_parameters,
    _compute_dynamic_ntk_parameters, dynamic_rope_update).

All math runs in float32 (bf16/f16 checkpoints are upcast when loaded).
Tokenization and Jinja chat-template rendering are NOT done here (see tools/reference/common/tokenize.mjs).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ---------------------------------------------------------------------------
# safetensors I/O (hand written; format: 8-byte LE u64 header length, UTF-8 JSON header padded with spaces
# to a multiple of 8, raw little-endian data) and the small building blocks live in
# tools/reference/common/refcommon, shared with tools/reference/internvl and tools/reference/qwen2vl.
# ---------------------------------------------------------------------------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from refcommon.safetensors_io import load_safetensors, save_safetensors  # noqa: E402,F401
from refcommon.ops import decoder_layers, gelu, linear, rms_norm  # noqa: E402,F401


# ---------------------------------------------------------------------------
# Config defaults -- configuration_internvl.py (v4: InternVLVisionConfig.__init__, InternVLConfig.__init__)
# and configuration_qwen2.py (Qwen2Config.__init__, the defaults that matter at inference)
# ---------------------------------------------------------------------------

VISION_DEFAULTS = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, attention_bias=False, use_qk_norm=False,
    intermediate_size=4096, hidden_act="gelu", hidden_dropout_prob=0.0, attention_dropout=0.0,
    projection_dropout=0.0, initializer_range=0.02, norm_type="layer_norm", layer_norm_eps=1e-06,
    image_size=[448, 448], patch_size=[14, 14], num_channels=3, use_mask_token=False,
    use_absolute_position_embeddings=True, layer_scale_init_value=0.1, use_mean_pooling=True)

INTERNVL_DEFAULTS = dict(
    image_token_id=151667, image_seq_length=256, downsample_ratio=0.5, projector_hidden_act="gelu",
    vision_feature_layer=-1, vision_feature_select_strategy="default")

QWEN2_DEFAULTS = dict(
    vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6,
    tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, use_sliding_window=False,
    sliding_window=4096, max_window_layers=28, attention_dropout=0.0)


def resolve_config(cfg: dict) -> dict:
    """Config as InternVLConfig(**config.json) would see it (defaults filled in)."""
    out = dict(INTERNVL_DEFAULTS)
    out.update({k: v for k, v in cfg.items() if k not in ("vision_config", "text_config")})
    v = dict(VISION_DEFAULTS)
    v.update(cfg.get("vision_config") or {})
    # InternVLVisionConfig: int image_size / patch_size -> (s, s)
    for k in ("image_size", "patch_size"):
        if not isinstance(v[k], (list, tuple)):
            v[k] = [v[k], v[k]]
    out["vision_config"] = v
    t = dict(cfg.get("text_config") or {})
    mt = t.get("model_type", "qwen2")  # InternVLConfig: text_config model_type defaults to "qwen2"
    if mt != "qwen2":
        raise NotImplementedError(f"text model_type {mt!r} (only qwen2 is ported here)")
    tt = dict(QWEN2_DEFAULTS)
    tt.update(t)
    tt["model_type"] = "qwen2"
    if tt.get("num_key_value_heads") is None:
        tt["num_key_value_heads"] = tt["num_attention_heads"]
    out["text_config"] = tt
    return out


# ---------------------------------------------------------------------------
# Image processor -- models/got_ocr2/image_processing_got_ocr2.py (GotOcr2ImageProcessor) and
# image_processing_got_ocr2_fast.py (GotOcr2ImageProcessorFast)
# ---------------------------------------------------------------------------

def get_all_supported_aspect_ratios(min_image_tiles: int, max_image_tiles: int) -> List[Tuple[int, int]]:
    # image_processing_got_ocr2.get_all_supported_aspect_ratios: (width, height) pairs, width-major
    # enumeration then a STABLE sort by area.
    aspect_ratios = []
    for width in range(1, max_image_tiles + 1):
        for height in range(1, max_image_tiles + 1):
            if width * height <= max_image_tiles and width * height >= min_image_tiles:
                aspect_ratios.append((width, height))
    return sorted(aspect_ratios, key=lambda x: x[0] * x[1])


def get_optimal_tiled_canvas(original_image_size: Tuple[int, int], target_tile_size: Tuple[int, int],
                             min_image_tiles: int, max_image_tiles: int) -> Tuple[int, int]:
    # image_processing_got_ocr2.get_optimal_tiled_canvas -> (num_columns, num_rows)
    possible = get_all_supported_aspect_ratios(min_image_tiles, max_image_tiles)
    original_height, original_width = original_image_size
    target_tile_height, target_tile_width = target_tile_size
    aspect_ratio = original_width / original_height
    area = original_width * original_height
    best_ratio_diff = float("inf")
    best_grid = (1, 1)
    for grid in possible:
        grid_aspect_ratio = grid[0] / grid[1]
        ratio_diff = abs(aspect_ratio - grid_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_grid = grid
        elif ratio_diff == best_ratio_diff:
            # favor more tiles until their area exceeds twice the image area
            if area > 0.5 * target_tile_height * target_tile_width * grid[0] * grid[1]:
                best_grid = grid
    return best_grid


PIL_RESAMPLE = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC, 4: Image.BOX,
                5: Image.HAMMING}


def _pil_resize_chw_uint8(chw: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """image_transforms.resize on a uint8 channels-first array: to_pil_image (no rescale for uint8),
    PIL Image.resize((width, height), resample, reducing_gap=None), back to uint8 channels-first.
    Pillow returns a plain copy when the size does not change."""
    img = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)), "RGB")
    out = img.resize((width, height), resample=PIL_RESAMPLE[resample])
    return np.array(out, dtype=np.uint8).transpose(2, 0, 1).copy()


def _torch_resize_chw_uint8_float_path(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """torchvision.transforms.v2.functional.resize(uint8, BICUBIC, antialias=True) on its
    float path (uint8 -> float32 -> F.interpolate(bicubic, antialias=True, align_corners=False)
    -> clamp(0, 255) -> round -> uint8).  This is what GotOcr2ImageProcessorFast computes on GPU (and on
    CPU with torch/torchvision versions lacking the native uint8 bicubic-AA kernel).  Newer CPU builds use a
    native uint8 fixed-point kernel that is a port of Pillow-SIMD and is therefore close to the PIL path."""
    if chw.shape[1:] == (height, width):
        return chw.copy()
    x = torch.from_numpy(chw.astype(np.float32))[None]
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    y = y.clamp_(0, 255).round_().to(torch.uint8)
    return y[0].numpy()


class GotOcr2ImageProcessorRef:
    """GotOcr2ImageProcessor (slow, PIL) with the settings of a preprocessor_config.json, plus an emulation of
    GotOcr2ImageProcessorFast's float path (see _torch_resize_chw_uint8_float_path)."""

    def __init__(self, pp: dict):
        self.pp = pp
        size = pp.get("size", {"height": 384, "width": 384})
        self.size = (int(size["height"]), int(size["width"]))
        self.crop_to_patches = bool(pp.get("crop_to_patches", False))
        self.min_patches = int(pp.get("min_patches", 1))
        self.max_patches = int(pp.get("max_patches", 12))
        self.resample = int(pp.get("resample", 3))
        self.do_resize = bool(pp.get("do_resize", True))
        self.do_rescale = bool(pp.get("do_rescale", True))
        self.rescale_factor = float(pp.get("rescale_factor", 1 / 255))
        self.do_normalize = bool(pp.get("do_normalize", True))
        self.image_mean = list(pp.get("image_mean", [0.48145466, 0.4578275, 0.40821073]))  # OPENAI_CLIP_MEAN
        self.image_std = list(pp.get("image_std", [0.26862954, 0.26130258, 0.27577711]))   # OPENAI_CLIP_STD
        self.do_convert_rgb = bool(pp.get("do_convert_rgb", True))

    # -- crop_image_to_patches (slow: PIL; fast: torch float path) --------------------------------------
    def crop_image_to_patches_uint8(self, chw: np.ndarray, min_patches: int, max_patches: int,
                                    use_thumbnail: bool = True, path: str = "pil"):
        """GotOcr2ImageProcessor.crop_image_to_patches on a uint8 CHW image.  Returns (list of uint8 CHW
        patches, (num_columns, num_rows)).  Patches are row-major over the resized image, thumbnail last
        (only when more than one patch).  The resizes inside use the default resample BICUBIC."""
        ph, pw = self.size
        oh, ow = chw.shape[-2:]
        num_columns, num_rows = get_optimal_tiled_canvas((oh, ow), (ph, pw), min_patches, max_patches)
        target_width, target_height = pw * num_columns, ph * num_rows
        num_blocks = num_columns * num_rows
        rs = (lambda a, h, w: _pil_resize_chw_uint8(a, h, w, 3)) if path == "pil" else \
            _torch_resize_chw_uint8_float_path
        resized = rs(chw, target_height, target_width)
        patches = []
        for i in range(num_blocks):
            column = i % num_columns
            row = i // num_columns
            box = (column * pw, row * ph, (column + 1) * pw, (row + 1) * ph)
            patches.append(resized[:, box[1]:box[3], box[0]:box[2]].copy())
        if use_thumbnail and len(patches) != 1:
            patches.append(rs(chw, ph, pw))
        return patches, (num_columns, num_rows)

    def preprocess(self, image: Image.Image, crop_to_patches: Optional[bool] = None,
                   min_patches: Optional[int] = None, max_patches: Optional[int] = None, path: str = "pil"):
        """GotOcr2ImageProcessor.preprocess for ONE image.  path="pil" is the slow processor exactly;
        path="fast_float" emulates GotOcr2ImageProcessorFast (torch resize float path + fused
        rescale/normalize: (x - mean/rescale_factor) / (std/rescale_factor) in float32).
        Returns dict(pixel_values [N,3,H,W] float32, num_patches, grid, uint8_patches)."""
        crop_to_patches = self.crop_to_patches if crop_to_patches is None else crop_to_patches
        min_patches = self.min_patches if min_patches is None else min_patches
        max_patches = self.max_patches if max_patches is None else max_patches
        if self.do_convert_rgb:
            image = image.convert("RGB")  # image_transforms.convert_to_rgb (no-op for an RGB image)
        chw = np.array(image, dtype=np.uint8).transpose(2, 0, 1).copy()
        grid = (1, 1)
        if crop_to_patches and max_patches > 1:
            patches, grid = self.crop_image_to_patches_uint8(chw, min_patches, max_patches, path=path)
        else:
            patches = [chw]
        out_u8 = []
        for p in patches:
            if self.do_resize:
                if path == "pil":
                    p = _pil_resize_chw_uint8(p, self.size[0], self.size[1], self.resample)
                else:
                    p = _torch_resize_chw_uint8_float_path(p, self.size[0], self.size[1])
            out_u8.append(p)
        u8 = np.stack(out_u8)  # [N, 3, H, W] uint8
        if path == "pil":
            # image_transforms.rescale: image.astype(float64) * scale, then astype(float32)
            x = u8.astype(np.float64)
            if self.do_rescale:
                x = x * self.rescale_factor
            x = x.astype(np.float32)
            if self.do_normalize:
                # image_transforms.normalize: mean/std as arrays of the image dtype (float32), (x - mean) / std
                mean = np.array(self.image_mean, dtype=np.float32)[None, :, None, None]
                std = np.array(self.image_std, dtype=np.float32)[None, :, None, None]
                x = (x - mean) / std
            pv = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        else:
            # BaseImageProcessorFast.rescale_and_normalize with _fuse_mean_std_and_rescale_factor:
            # mean = tensor(image_mean) * (1/rescale_factor), std likewise, then F.normalize on float32.
            x = torch.from_numpy(u8).to(torch.float32)
            if self.do_rescale and self.do_normalize:
                mean = torch.tensor(self.image_mean) * (1.0 / self.rescale_factor)
                std = torch.tensor(self.image_std) * (1.0 / self.rescale_factor)
                x = (x - mean[None, :, None, None]) / std[None, :, None, None]
            elif self.do_normalize:
                x = (x - torch.tensor(self.image_mean)[None, :, None, None]) / torch.tensor(self.image_std)[None, :, None, None]
            elif self.do_rescale:
                x = x * self.rescale_factor
            pv = x.contiguous()
        return {"pixel_values": pv, "num_patches": len(out_u8), "grid": grid, "uint8_patches": u8}


# ---------------------------------------------------------------------------
# Processor -- models/internvl/processing_internvl.py (4.52) and the hub chat template
# ---------------------------------------------------------------------------

# The chat template of convert_internvl_weights_to_hf.py (the version whose template emits
# '<IMG_CONTEXT>\n' for an image item).  As bytes it is exactly 481 long -- the size of
# OpenGVLab/InternVL3-1B-hf/chat_template.jinja after "Update processor (#2)".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}"
    "{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{'<|im_end|>\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{'<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def render_chat_template_py(messages: List[dict], add_generation_prompt: bool) -> str:
    """Hand translation of CHAT_TEMPLATE (used only to cross-check the @huggingface/jinja rendering)."""
    out = ""
    for m in messages:
        out += "<|im_start|>" + m["role"] + "\n"
        if isinstance(m["content"], str):
            out += m["content"]
        else:
            for c in m["content"]:
                if c["type"] == "image":
                    out += "<IMG_CONTEXT>\n"
                elif c["type"] == "video":
                    out += "<video>\n"
                elif c["type"] == "text":
                    out += c["text"]
        out += "<|im_end|>\n"
    if add_generation_prompt:
        out += "<|im_start|>assistant\n"
    return out


def insert_media_placeholders(prompt: str, image_num_patches: Sequence[int], image_seq_length: int,
                              start_image_token: str = "<img>", end_image_token: str = "</img>",
                              image_token: str = "<IMG_CONTEXT>", video_token: str = "<video>") -> Tuple[str, int]:
    """InternVLProcessor._insert_media_placeholders for ONE prompt and images only: every occurrence of
    image_token (in order) is replaced via a '<placeholder>' pass by
    start_image_token + image_token * image_seq_length * num_patches[i] + end_image_token.
    Returns (new_prompt, number of images consumed)."""
    new_prompt = prompt
    replace_strings = []
    image_index = 0
    while image_token in new_prompt or video_token in new_prompt:
        if image_token in new_prompt and (video_token not in new_prompt
                                          or new_prompt.index(image_token) < new_prompt.index(video_token)):
            new_prompt = new_prompt.replace(image_token, "<placeholder>", 1)
            replace_strings.append(
                f"{start_image_token}{image_token * image_seq_length * image_num_patches[image_index]}{end_image_token}")
            image_index += 1
        else:
            raise NotImplementedError("videos are not ported")
    while "<placeholder>" in new_prompt:
        new_prompt = new_prompt.replace("<placeholder>", replace_strings.pop(0), 1)
    return new_prompt, image_index


# ---------------------------------------------------------------------------
# Building blocks: linear, gelu (ACT2FN["gelu"] = exact erf GELU), rms_norm (InternVLVisionRMSNorm /
# Qwen2RMSNorm: float32 variance, weight * x.to(input_dtype)) come from refcommon.ops
# ---------------------------------------------------------------------------

ACT = {"gelu": gelu, "silu": F.silu}


# ---------------------------------------------------------------------------
# InternVLVisionModel -- modeling_internvl.py
# ---------------------------------------------------------------------------

class InternVLVisionRef:
    def __init__(self, vcfg: dict, W: Dict[str, torch.Tensor], prefix: str = "model.vision_tower."):
        self.c = vcfg
        self.W = W
        self.p = prefix
        self.C = vcfg["hidden_size"]
        self.H = vcfg["num_attention_heads"]
        self.D = self.C // self.H
        assert self.D * self.H == self.C
        self.scale = self.D ** -0.5                       # InternVLVisionAttention.scale
        self.patch = tuple(vcfg["patch_size"])
        self.image_size = tuple(vcfg["image_size"])
        self.n_layers = vcfg["num_hidden_layers"]
        self.eps = vcfg["layer_norm_eps"]
        self.norm_type = vcfg["norm_type"]
        self.act = ACT[vcfg["hidden_act"]]
        if vcfg.get("use_mask_token"):
            pass  # mask_token is only used with bool_masked_pos (never at inference)

    def w(self, name):
        return self.W[self.p + name]

    def wo(self, name):
        return self.W.get(self.p + name)

    def interpolate_pos_encoding(self, embeddings, height, width):
        # InternVLVisionEmbeddings.interpolate_pos_encoding
        pos = self.w("embeddings.position_embeddings")
        num_patches = embeddings.shape[1] - 1
        num_positions = pos.shape[1] - 1
        if num_patches == num_positions and height == width:
            return pos
        class_pos_embed = pos[:, :1]
        patch_pos_embed = pos[:, 1:]
        dim = embeddings.shape[-1]
        new_height = height // self.patch[0]
        new_width = width // self.patch[1]
        sqrt_num_positions = int(num_positions ** 0.5)
        patch_pos_embed = patch_pos_embed.reshape(1, sqrt_num_positions, sqrt_num_positions, dim).permute(0, 3, 1, 2)
        patch_pos_embed = F.interpolate(patch_pos_embed, size=(new_height, new_width), mode="bicubic",
                                        align_corners=False)
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed, patch_pos_embed), dim=1)

    def embeddings(self, pixel_values):
        # InternVLVisionEmbeddings.forward: Conv2d patch projection, flatten(2).transpose(1, 2),
        # cat(cls_token, patches), + position embeddings (if use_absolute_position_embeddings)
        _, _, height, width = pixel_values.shape
        x = F.conv2d(pixel_values, self.w("embeddings.patch_embeddings.projection.weight"),
                     self.w("embeddings.patch_embeddings.projection.bias"), stride=self.patch)
        x = x.flatten(2).transpose(1, 2)
        B = x.shape[0]
        cls = self.w("embeddings.cls_token").expand(B, -1, -1)
        x = torch.cat((cls, x), dim=1)
        if self.c["use_absolute_position_embeddings"]:
            x = x + self.interpolate_pos_encoding(x, height, width)
        return x

    def norm(self, x, name):
        if self.norm_type == "layer_norm":   # nn.LayerNorm(hidden, eps=layer_norm_eps)
            return F.layer_norm(x, (x.shape[-1],), self.w(name + ".weight"), self.w(name + ".bias"), self.eps)
        if self.norm_type == "rms_norm":     # InternVLVisionRMSNorm(hidden, eps=layer_norm_eps)
            return rms_norm(x, self.w(name + ".weight"), self.eps)
        raise NotImplementedError(self.norm_type)

    def attention(self, x, li):
        # InternVLVisionAttention.forward + eager_attention_forward (non-causal, no mask)
        a = f"encoder.layer.{li}.attention."
        B, N, _ = x.shape
        q = linear(x, self.w(a + "q_proj.weight"), self.wo(a + "q_proj.bias"))
        k = linear(x, self.w(a + "k_proj.weight"), self.wo(a + "k_proj.bias"))
        v = linear(x, self.w(a + "v_proj.weight"), self.wo(a + "v_proj.bias"))
        if self.c["use_qk_norm"]:
            # q_norm / k_norm = InternVLVisionRMSNorm(embed_dim) with its DEFAULT eps 1e-6 (not layer_norm_eps),
            # applied over the full embed dim before the head split
            q = rms_norm(q, self.w(a + "q_norm.weight"), 1e-6)
            k = rms_norm(k, self.w(a + "k_norm.weight"), 1e-6)
        q = q.reshape(B, N, self.H, self.D).transpose(1, 2)
        k = k.reshape(B, N, self.H, self.D).transpose(1, 2)
        v = v.reshape(B, N, self.H, self.D).transpose(1, 2)
        attn = torch.matmul(q, k.transpose(2, 3)) * self.scale
        attn = torch.softmax(attn, dim=-1)
        o = torch.matmul(attn, v).transpose(1, 2).reshape(B, N, self.C)
        return linear(o, self.w(a + "projection_layer.weight"), self.w(a + "projection_layer.bias"))

    def mlp(self, x, li):
        m = f"encoder.layer.{li}.mlp."
        h = self.act(linear(x, self.w(m + "fc1.weight"), self.w(m + "fc1.bias")))
        return linear(h, self.w(m + "fc2.weight"), self.w(m + "fc2.bias"))

    def layer(self, x, li):
        # InternVLVisionLayer.forward: h = x + lambda_1 * attn(layernorm_before(x));
        #                              out = h + lambda_2 * mlp(layernorm_after(h))
        p = f"encoder.layer.{li}."
        attn = self.attention(self.norm(x, p + "layernorm_before"), li)
        h = self.w(p + "lambda_1") * attn + x
        y = self.mlp(self.norm(h, p + "layernorm_after"), li)
        return self.w(p + "lambda_2") * y + h

    def forward(self, pixel_values):
        """InternVLVisionModel.forward with output_hidden_states=True:
        returns (last_hidden_state, hidden_states) where hidden_states = (embeddings, layer_0, ..., layer_{L-1})
        and last_hidden_state = layernorm(layer_{L-1}) -- layernorm is nn.Identity when use_mean_pooling."""
        h = self.embeddings(pixel_values)
        states = [h]
        for li in range(self.n_layers):
            h = self.layer(h, li)
            states.append(h)
        if not self.c["use_mean_pooling"]:
            h = F.layer_norm(h, (h.shape[-1],), self.w("layernorm.weight"), self.w("layernorm.bias"), self.eps)
        return h, states


# ---------------------------------------------------------------------------
# Qwen2Model + lm_head -- models/qwen2/modeling_qwen2.py
# ---------------------------------------------------------------------------

class Qwen2Ref:
    def __init__(self, tcfg: dict, W: Dict[str, torch.Tensor], prefix: str = "model.language_model.",
                 lm_head_key: str = "lm_head.weight"):
        self.c = tcfg
        self.W = W
        self.p = prefix
        self.hidden = tcfg["hidden_size"]
        self.n_heads = tcfg["num_attention_heads"]
        self.n_kv = tcfg["num_key_value_heads"]
        self.head_dim = tcfg.get("head_dim") or self.hidden // self.n_heads
        self.n_layers = tcfg["num_hidden_layers"]
        self.eps = tcfg["rms_norm_eps"]
        self.theta = float(tcfg["rope_theta"])
        self.max_pos = tcfg["max_position_embeddings"]
        if tcfg.get("use_sliding_window", False):
            raise NotImplementedError("sliding-window attention")
        if tcfg["hidden_act"] != "silu":
            raise NotImplementedError(tcfg["hidden_act"])
        rs = tcfg.get("rope_scaling")
        self.rope_type = "default"
        if rs is not None:
            self.rope_type = rs.get("rope_type", rs.get("type"))
            if self.rope_type not in ("default", "dynamic"):
                raise NotImplementedError(f"rope_scaling {rs}")
        # modeling_rope_utils._compute_default_rope_parameters; _compute_dynamic_ntk_parameters with
        # seq_len=None uses seq_len = max_position_embeddings -> base * ((factor*L/L) - (factor-1))**(d/(d-2))
        # = base * 1.0**(...) = base exactly; dynamic_rope_update only recomputes inv_freq once a position
        # >= max_position_embeddings is seen (asserted never to happen in forward()).
        base = self.theta
        if self.rope_type == "dynamic":
            factor = float(rs["factor"])
            seq_len = self.max_pos
            base = base * ((factor * seq_len / self.max_pos) - (factor - 1)) ** (self.head_dim / (self.head_dim - 2))
        self.inv_freq = 1.0 / (base ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim))
        self.tie = bool(tcfg.get("tie_word_embeddings", False))  # Qwen2Config default False
        self.lm_head_key = lm_head_key

    def w(self, name):
        return self.W[self.p + name]

    def embed(self, input_ids):
        return F.embedding(input_ids, self.w("embed_tokens.weight"))

    def lm_head(self, h):
        w = self.w("embed_tokens.weight") if self.tie else self.W[self.lm_head_key]
        return linear(h, w)

    def rope(self, position_ids):
        # Qwen2RotaryEmbedding.forward: freqs = inv_freq (x) positions in float32, emb = cat(freqs, freqs)
        freqs = position_ids.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, inputs_embeds, past=None):
        """inputs_embeds [T, hidden] (batch 1); past: per layer (k, v) [n_kv, P, head_dim].
        Returns (logits [T, vocab] float32, new_past)."""
        T = inputs_embeds.shape[0]
        P = 0 if past is None else past[0][0].shape[1]
        assert P + T <= self.max_pos, "dynamic RoPE / max_position_embeddings would kick in"
        cos, sin = self.rope(torch.arange(P, P + T))
        # Qwen2DecoderLayer stack (refcommon.ops.decoder_layers): q/k/v with bias, o_proj and MLP without
        h, new_past = decoder_layers(inputs_embeds, cos, sin, past, self.W, self.p + "layers.", self.n_layers,
                                     self.n_heads, self.n_kv, self.head_dim, self.eps, qkv_bias=True)
        h = rms_norm(h, self.w("norm.weight"), self.eps)
        return self.lm_head(h).float(), new_past


# ---------------------------------------------------------------------------
# InternVLForConditionalGeneration -- modeling_internvl.py
# ---------------------------------------------------------------------------

class InternVLHFRef:
    def __init__(self, model_dir: Optional[str] = None, config: Optional[dict] = None,
                 weights: Optional[Dict[str, torch.Tensor]] = None):
        if config is None:
            with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
                config = json.load(f)
        if weights is None:
            weights, _ = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.raw_config = config
        self.config = resolve_config(config)
        self.stored_dtypes = {k: str(v.dtype) for k, v in weights.items()}
        self.W = {k: v.float() for k, v in weights.items()}
        c = self.config
        self.vision = InternVLVisionRef(c["vision_config"], self.W)
        self.lm = Qwen2Ref(c["text_config"], self.W)
        self.image_token_id = c["image_token_id"]
        self.downsample_ratio = c["downsample_ratio"]
        self.act = ACT[c["projector_hidden_act"]]

    @staticmethod
    def pixel_shuffle(vision_features, scale_factor=0.5):
        # InternVLModel.pixel_shuffle (verbatim index algebra)
        batch_size, width, height, channels = vision_features.size()
        if height % scale_factor != 0 or width % scale_factor != 0:
            raise ValueError("Height and width must be divisible by scale_factor for proper downsampling.")
        vision_features = vision_features.view(batch_size, width, int(height * scale_factor),
                                               int(channels / scale_factor))
        vision_features = vision_features.permute(0, 2, 1, 3).contiguous()
        vision_features = vision_features.view(batch_size, int(height * scale_factor), int(width * scale_factor),
                                               int(channels / (scale_factor ** 2)))
        vision_features = vision_features.permute(0, 2, 1, 3).contiguous()
        return vision_features

    def multi_modal_projector(self, x):
        # InternVLMultiModalProjector: LayerNorm(C*(1/r)^2) with nn.LayerNorm's default eps 1e-5,
        # linear_1, ACT2FN[projector_hidden_act], linear_2
        p = "model.multi_modal_projector."
        x = F.layer_norm(x, (x.shape[-1],), self.W[p + "layer_norm.weight"], self.W[p + "layer_norm.bias"], 1e-5)
        x = linear(x, self.W[p + "linear_1.weight"], self.W[p + "linear_1.bias"])
        x = self.act(x)
        return linear(x, self.W[p + "linear_2.weight"], self.W[p + "linear_2.bias"])

    def get_image_features(self, pixel_values, vision_feature_layer=None, vision_feature_select_strategy=None,
                           return_intermediates=False):
        # InternVLModel.get_image_features
        c = self.config
        vision_feature_layer = c["vision_feature_layer"] if vision_feature_layer is None else vision_feature_layer
        strategy = c["vision_feature_select_strategy"] if vision_feature_select_strategy is None \
            else vision_feature_select_strategy
        last, states = self.vision.forward(pixel_values)
        if vision_feature_layer == -1:
            selected = last                  # vision_tower(...).last_hidden_state
        else:
            # NOTE: in the 4.52 source this branch calls self.vision_model(...) (an attribute that does not
            # exist) without output_hidden_states -> it raises.  We return hidden_states[layer], which is what
            # the code evidently intends and what later versions do.
            selected = states[vision_feature_layer]
        vf = selected
        if strategy == "default":
            vf = vf[:, 1:, :]
        channels = vf.shape[1]
        feature_size = int(channels ** 0.5)
        batch_size = vf.shape[0]
        vf = vf.reshape(batch_size, feature_size, feature_size, -1)
        vf = self.pixel_shuffle(vf, scale_factor=self.downsample_ratio)
        vf = vf.reshape(batch_size, -1, vf.shape[-1])
        shuffled = vf
        out = self.multi_modal_projector(vf)
        if return_intermediates:
            return out, {"vision_embeddings": states[0], "vision_selected_hidden": selected,
                         "pixel_shuffled": shuffled}
        return out

    def inputs_embeds(self, input_ids, pixel_values=None, image_features=None):
        # InternVLModel.forward: embed, then inputs_embeds.masked_scatter(input_ids == image_token_id,
        # image_features) -- the rows of image_features (patch-major, then token) fill the image-token
        # positions in order; token/feature counts must match.
        emb = self.lm.embed(input_ids)
        if pixel_values is not None or image_features is not None:
            if image_features is None:
                image_features = self.get_image_features(pixel_values)
            mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(emb)
            if emb[mask].numel() != image_features.numel():
                raise ValueError(f"Image features and image tokens do not match: tokens: "
                                 f"{int((input_ids == self.image_token_id).sum())}, features "
                                 f"{image_features.shape[0] * image_features.shape[1]}")
            emb = emb.masked_scatter(mask, image_features.to(emb.dtype))
        return emb

    def prompt_logits(self, input_ids, pixel_values=None):
        logits, _ = self.lm.forward(self.inputs_embeds(input_ids, pixel_values))
        return logits

    def greedy_generate(self, input_ids, pixel_values=None, max_new_tokens=8, eos_token_id=None,
                        use_cache=True):
        """generate(do_sample=False, num_beams=1): argmax each step; pixel_values only in the first forward
        (prepare_inputs_for_generation drops them once cache_position[0] != 0); stops after emitting an
        eos id.  Returns (new_ids, step_logits [n, vocab])."""
        eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
        out: List[int] = []
        steps = []
        if use_cache:
            logits, past = self.lm.forward(self.inputs_embeds(input_ids, pixel_values))
            for _ in range(max_new_tokens):
                last = logits[-1]
                steps.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if nxt in eos:
                    break
                logits, past = self.lm.forward(self.lm.embed(torch.tensor([nxt])), past)
        else:
            ids = input_ids
            feats = self.get_image_features(pixel_values) if pixel_values is not None else None
            for _ in range(max_new_tokens):
                logits, _ = self.lm.forward(self.inputs_embeds(ids, image_features=feats))
                last = logits[-1]
                steps.append(last)
                nxt = int(torch.argmax(last))
                out.append(nxt)
                if nxt in eos:
                    break
                ids = torch.cat([ids, torch.tensor([nxt])])
        return out, torch.stack(steps)


# ---------------------------------------------------------------------------
# Original InternVL (InternVLChatModel) -> -hf conversion -- convert_internvl_weights_to_hf.py
# ---------------------------------------------------------------------------

# ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION / _TEXT_QWEN2 / _MULTI of the conversion script version that
# writes the 4.52 layout (prefixes model.vision_tower / model.language_model / model.multi_modal_projector /
# lm_head).  Patterns are applied in order with re.sub on the newline-joined key list.
KEY_MAPPING_VISION = [
    (r"vision_model", r"model.vision_tower"),
    (r"layers", r"layer"),
    (r"class_embedding", r"cls_token"),
    (r"position_embedding", r"position_embeddings"),
    (r"patch_embedding", r"patch_embeddings.projection"),
    (r"ls(\d+)", r"lambda_\1"),
    (r"attn.proj", r"attention.projection_layer"),
    (r"attn.dropout", r"attention.projection_dropout"),
    (r"attn", r"attention"),
    (r"norm1", r"layernorm_before"),
    (r"norm2", r"layernorm_after"),
]
KEY_MAPPING_TEXT_QWEN2 = [
    (r"language_model.model.", r"model.language_model."),
    (r"language_model.lm_head", r"lm_head"),
]
KEY_MAPPING_MULTI = [
    (r"mlp1.0", r"model.multi_modal_projector.layer_norm"),
    (r"mlp1.1", r"model.multi_modal_projector.linear_1"),
    (r"mlp1.3", r"model.multi_modal_projector.linear_2"),
]
# InternVLForConditionalGeneration._checkpoint_conversion_mapping (4.52): how from_pretrained renames keys
# of checkpoints saved before the 4.52 refactor (e.g. by the older conversion script, whose vision prefix is
# plain "vision_tower" and whose text keys stay "language_model.model.*" / "language_model.lm_head.*").
LEGACY_HF_KEY_MAPPING = [
    (r"^language_model.model", "model.language_model"),
    (r"^vision_tower", "model.vision_tower"),
    (r"^multi_modal_projector", "model.multi_modal_projector"),
    (r"^language_model.lm_head", "lm_head"),
]


def convert_old_keys_to_new_keys(keys: List[str], lm_type: str = "qwen2") -> Dict[str, str]:
    """convert_internvl_weights_to_hf.convert_old_keys_to_new_keys (qwen2 branch)."""
    if lm_type != "qwen2":
        raise NotImplementedError(lm_type)

    def renamed(group, patterns):
        # the script joins a key group with "\n", applies each pattern with re.sub to the whole string,
        # and splits again
        old = "\n".join(group)
        new = old
        for pat, rep in patterns:
            new = re.sub(pat, rep, new)
        return dict(zip(old.split("\n"), new.split("\n")))

    out = {}
    out.update(renamed([k for k in keys if k.startswith("vision_model")], KEY_MAPPING_VISION))
    out.update(renamed([k for k in keys if k.startswith("language_model")], KEY_MAPPING_TEXT_QWEN2))
    out.update(renamed([k for k in keys if not (k.startswith("language_model") or k.startswith("vision_model"))],
                       KEY_MAPPING_MULTI))
    out.pop("", None)
    return out


def convert_original_state_dict(sd: Dict[str, torch.Tensor], vision_hidden: int) -> Dict[str, torch.Tensor]:
    """write_model's loop: rename, and split attn.qkv (weight and bias) into q/k/v by [:dim], [dim:2dim], [-dim:]."""
    new_keys = convert_old_keys_to_new_keys(list(sd.keys()))
    dim = vision_hidden
    out = {}
    for key, t in sd.items():
        nk = new_keys[key]
        if "attn.qkv" in key:
            out[nk.replace("attention.qkv", "attention.q_proj")] = t[:dim]
            out[nk.replace("attention.qkv", "attention.k_proj")] = t[dim:2 * dim]
            out[nk.replace("attention.qkv", "attention.v_proj")] = t[-dim:]
        elif "attention.wqkv" in key:
            raise NotImplementedError("InternLM2 wqkv split (llama branch) is not needed for qwen2")
        else:
            out[nk] = t
    return out


UNNECESSARY_CONFIG_KEYS = ["_name_or_path", "_attn_implementation_autoset", "auto_map", "use_bfloat16",
                           "use_flash_attn", "bias", "laux_allreduce", "moe_coeff_ratio", "moe_intermediate_size",
                           "moe_output_scale", "noisy_gate_policy", "shared_expert_intermediate_size",
                           "use_residual", "use_moe", "use_rts", "use_weighted_residual", "moe_config",
                           "num_experts", "num_routed_experts", "num_shared_experts", "capacity_factor",
                           "eval_capacity_factor", "drop_path_rate"]


def convert_original_config(orig: dict, image_token_id: int, force_eos: Optional[int] = None) -> dict:
    """get_internvl_config (qwen2 branch): llm_config -> text_config (minus UNNECESSARY_CONFIG_KEYS,
    use_cache=True, eos forced to <|im_end|> for InternVL3 paths), vision_config renames
    (attention_probs_dropout_prob -> attention_dropout + projection_dropout, qk_normalization -> use_qk_norm,
    qkv_bias -> attention_bias, use_absolute_position_embeddings=True).  Everything else (downsample_ratio,
    vision_feature_layer, projector_hidden_act, ...) takes InternVLConfig DEFAULTS -- the script does not
    carry select_layer / downsample_ratio / force_image_size over."""
    llm = {k: v for k, v in orig["llm_config"].items() if k not in UNNECESSARY_CONFIG_KEYS}
    llm["use_cache"] = True
    if force_eos is not None:
        llm["eos_token_id"] = force_eos
    vc = {k: v for k, v in orig["vision_config"].items() if k not in UNNECESSARY_CONFIG_KEYS}
    vc["use_absolute_position_embeddings"] = True
    if "attention_probs_dropout_prob" in vc:
        d = vc.pop("attention_probs_dropout_prob")
        vc["attention_dropout"] = d
        vc["projection_dropout"] = d
    if "qk_normalization" in vc:
        vc["use_qk_norm"] = vc.pop("qk_normalization")
    if "qkv_bias" in vc:
        vc["attention_bias"] = vc.pop("qkv_bias")
    vc["model_type"] = "internvl_vision"
    llm["model_type"] = "qwen2"
    return {"architectures": ["InternVLForConditionalGeneration"], "model_type": "internvl",
            "image_token_id": image_token_id, "text_config": llm, "vision_config": vc}
