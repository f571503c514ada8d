#!/usr/bin/python3
"""Create the Qwen2-VL / Qwen2.5-VL test fixtures for GenRecal.Tests (deterministic, seeded).

Run with Debian's python3 (PyTorch 1.13 CPU, numpy, Pillow, python3-regex) and Node >= 18, from any directory:
    (cd tools/reference/common && npm ci) && /usr/bin/python3 tools/reference/qwen2vl/make_fixtures.py

Writes tests/GenRecal.Tests/Fixtures/qwen2vl/:
    image.png, smart_resize_cases.json, tokenizer_cases.json,
    qwen2-vl/   {config.json, model.safetensors (F32), tokenizer.json, tokenizer_config.json, vocab.json,
                 merges.txt, special_tokens_map.json, added_tokens.json, preprocessor_config.json,
                 chat_template.json, expected.json, expected.safetensors}
    qwen2.5-vl/ {... same, model.safetensors stored as BF16 ...}
Every number comes from qwen2vl_ref.py; every token id comes from tokenizers.js
(tools/reference/common/tokenize.mjs) and is cross-checked against an independent Python byte-level
BPE; the prompt string comes from @huggingface/jinja (tools/reference/common/render_template.mjs) and
is cross-checked against a hand port.  The byte-level BPE (bytes_to_unicode, train_bpe, PyBPE), the
tokenizer-file building blocks and the fixture scaffolding are shared with the other references
(tools/reference/common/refcommon).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'common'))
import qwen2vl_ref as R  # noqa: E402
from refcommon.bpe import PyBPE, train_bpe  # noqa: E402
from refcommon.fixtures import (Gen, check, draw_random_shapes, fixtures_dir, margins,  # noqa: E402
                                render_jinja, require_node_modules, run_tokjs, total_size, write_files,
                                write_json)
from refcommon.safetensors_io import bits_equal  # noqa: E402
from refcommon.tokenizer_files import (added_token_decoder, added_token_entry, added_tokens_json,  # noqa: E402
                                       merges_txt, qwen2_tokenizer_json, special_token_map_entry)

OUT = fixtures_dir('qwen2vl')

torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions

# ---------------------------------------------------------------------------
# Tokenizer: small Qwen2-style byte-level BPE
# ---------------------------------------------------------------------------

N_BPE_VOCAB = 600  # 256 byte symbols + learned merges

# Added tokens in the order (and relative ids) of Qwen2-VL-2B-Instruct (151643..151656), all special.
QWEN2VL_ADDED = [
    ('<|endoftext|>', True), ('<|im_start|>', True), ('<|im_end|>', True),
    ('<|object_ref_start|>', True), ('<|object_ref_end|>', True), ('<|box_start|>', True), ('<|box_end|>', True),
    ('<|quad_start|>', True), ('<|quad_end|>', True), ('<|vision_start|>', True), ('<|vision_end|>', True),
    ('<|vision_pad|>', True), ('<|image_pad|>', True), ('<|video_pad|>', True),
]
# Qwen2.5-VL-3B-Instruct additionally has 151657..151664, which are NOT special.
QWEN25VL_ADDED = QWEN2VL_ADDED + [
    ('<tool_call>', False), ('</tool_call>', False), ('<|fim_prefix|>', False), ('<|fim_middle|>', False),
    ('<|fim_suffix|>', False), ('<|fim_pad|>', False), ('<|repo_name|>', False), ('<|file_sep|>', False),
]
ADDITIONAL_SPECIAL = ['<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
                      '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>',
                      '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>']

# The Instruct checkpoints' chat_template.json (Qwen2-VL-2B/7B-Instruct; the same text is used
# for Qwen2.5-VL-3B-Instruct's processor chat template).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
    "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] "
    "== 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value "
    "+ 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|>"
    "<|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = "
    "video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|>"
    "<|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

CORPUS = """
You are a helpful assistant. You are a helpful assistant. You are a helpful assistant.
Describe this image. Describe this image in detail. What is in the picture? What is shown in this image?
The image shows a red square, a blue circle and a green triangle on a white background.
There is a small house with a garden, two trees and a cat sitting near the door.
Hello, who are you? Please answer in one sentence. I am a helpful assistant that can see images.
The quick brown fox jumps over the lazy dog. I have 123 apples and 45 oranges. Prices: $4.50!
She said: "don't worry, we'll be there soon." They're going to the market, and I'm staying here.
Can you count the objects in the picture? There are three objects: one circle and two rectangles.
The vision encoder splits the image into patches, merges four patches into one token, and the
language model reads the visual tokens together with the text. The sky is blue and the grass is green.
user assistant system image picture question answer describe detail color shape object video frame
请详细描述这张图片。图片中有什么？这是一张彩色的图片，上面有红色的正方形、蓝色的圆形和绿色的三角形。
你好，请问你是谁？我是一个人工智能助手。今天天气很好，我们去公园散步吧。
"""


def tokenizer_files(vocab, merges, added_list, variant):
    """{filename: json-able or str} for a Qwen2-VL / Qwen2.5-VL style tokenizer (HF layout)."""
    n = len(vocab)
    added = {c: n + i for i, (c, _) in enumerate(added_list)}
    special = [c for c, sp in added_list if sp]
    entries = [added_token_entry(added[c], c, sp) for c, sp in added_list]
    tok_json = qwen2_tokenizer_json(vocab, merges, entries, ignore_merges=False)
    tok_cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(added[c]): added_token_decoder(c, sp) for c, sp in added_list},
        "additional_special_tokens": list(ADDITIONAL_SPECIAL),
        "bos_token": None,
    }
    if variant == 'qwen2-vl':
        # Qwen2-VL-2B-Instruct's tokenizer_config.json carries the same chat template as chat_template.json
        tok_cfg["chat_template"] = CHAT_TEMPLATE
    tok_cfg.update({
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768 if variant == 'qwen2-vl' else 131072,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    })
    special_map = {
        "additional_special_tokens": list(ADDITIONAL_SPECIAL),
        "eos_token": special_token_map_entry("<|im_end|>"),
        "pad_token": special_token_map_entry("<|endoftext|>"),
    }
    files = {
        'tokenizer.json': tok_json,
        'tokenizer_config.json': tok_cfg,
        'special_tokens_map.json': special_map,
        'added_tokens.json': added_tokens_json(added),
        'vocab.json': vocab,
        'merges.txt': merges_txt(merges),
        'chat_template.json': {"chat_template": CHAT_TEMPLATE},
    }
    return files, added, special


# ---------------------------------------------------------------------------
# Image (150 x 90 RGB, seeded gradient + shapes)
# ---------------------------------------------------------------------------

def make_image(path):
    rng = np.random.RandomState(20240829)
    W, H = 150, 90
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    base = np.stack([255 * xx / (W - 1), 255 * (1 - yy / (H - 1)) * 0.8 + 30,
                     127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1)
    base += rng.normal(0, 8, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), 'RGB')
    draw_random_shapes(img, rng, 8, 4)
    img.save(path, format='PNG', optimize=False)


# ---------------------------------------------------------------------------
# Configs (key sets mirror the hub's Qwen2-VL-2B-Instruct / Qwen2.5-VL-3B-Instruct config.json)
# ---------------------------------------------------------------------------

VOCAB_SIZE = 640   # padded past the tokenizer size, like the hub's 151936 > 151665


def config_head(architecture, added):
    """The leading keys of both hub configs: architectures, attention_dropout and the token ids."""
    return {
        "architectures": [architecture],
        "attention_dropout": 0.0,
        "bos_token_id": added['<|endoftext|>'],
        "eos_token_id": added['<|im_end|>'],
        "vision_start_token_id": added['<|vision_start|>'],
        "vision_end_token_id": added['<|vision_end|>'],
        "vision_token_id": added['<|vision_pad|>'],
        "image_token_id": added['<|image_pad|>'],
        "video_token_id": added['<|video_pad|>'],
    }


def qwen2vl_config(added):
    return {
        **config_head("Qwen2VLForConditionalGeneration", added),
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "model_type": "qwen2_vl",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 100.0,
        "sliding_window": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "embed_dim": 32,
            "mlp_ratio": 4,
            "num_heads": 4,
            "in_chans": 3,
            "hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": VOCAB_SIZE,
    }


def qwen25vl_config(added):
    return {
        **config_head("Qwen2_5_VLForConditionalGeneration", added),
        "hidden_act": "silu",
        "hidden_size": 96,
        "initializer_range": 0.02,
        "intermediate_size": 160,
        "max_position_embeddings": 128000,
        "max_window_layers": 70,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": 3,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-06,
        "rope_theta": 60.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 3,
            "hidden_act": "silu",
            "hidden_size": 48,
            "intermediate_size": 72,
            "num_heads": 3,
            "in_chans": 3,
            "out_hidden_size": 96,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 84,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
        "vocab_size": VOCAB_SIZE,
    }


def preprocessor_config(min_pixels, max_pixels, processor_class):
    # Qwen2VLImageProcessor keys (image_processing_qwen2_vl.py __init__), hub style min/max_pixels plus the
    # equivalent `size` dict that 4.5x also reads; resample 3 = PILImageResampling.BICUBIC.
    return {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(R.OPENAI_CLIP_MEAN),
        "image_processor_type": "Qwen2VLImageProcessor",
        "image_std": list(R.OPENAI_CLIP_STD),
        "max_pixels": max_pixels,
        "merge_size": 2,
        "min_pixels": min_pixels,
        "patch_size": 14,
        "processor_class": processor_class,
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": max_pixels, "shortest_edge": min_pixels},
        "temporal_patch_size": 2,
    }


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------

def make_weights(cfg, seed, n_tok, lm_head_scale, embed_std=1.0, resid_scale=1.0, qk_scale=1.5):
    g = Gen(seed)
    W = {}
    vc = cfg['vision_config']
    qwen25 = cfg['model_type'] == 'qwen2_5_vl'
    E = vc['hidden_size'] if qwen25 else vc['embed_dim']
    out_dim = vc['out_hidden_size'] if qwen25 else vc['hidden_size']
    p, tps = vc['patch_size'], vc['temporal_patch_size']
    v = 'visual.'
    W[v + 'patch_embed.proj.weight'] = g.n((E, 3, tps, p, p), (3 * tps * p * p) ** -0.5 * 2.0)
    for i in range(vc['depth']):
        b = f'{v}blocks.{i}.'
        W[b + 'norm1.weight'] = g.n((E,), 0.15, 1.0)
        W[b + 'norm2.weight'] = g.n((E,), 0.15, 1.0)
        if not qwen25:
            W[b + 'norm1.bias'] = g.n((E,), 0.1)
            W[b + 'norm2.bias'] = g.n((E,), 0.1)
        W[b + 'attn.qkv.weight'] = g.n((3 * E, E), E ** -0.5 * 2.0)
        W[b + 'attn.qkv.bias'] = g.n((3 * E,), 0.2)
        W[b + 'attn.proj.weight'] = g.n((E, E), E ** -0.5)
        W[b + 'attn.proj.bias'] = g.n((E,), 0.1)
        if qwen25:
            I = vc['intermediate_size']
            W[b + 'mlp.gate_proj.weight'] = g.n((I, E), E ** -0.5)
            W[b + 'mlp.gate_proj.bias'] = g.n((I,), 0.1)
            W[b + 'mlp.up_proj.weight'] = g.n((I, E), E ** -0.5)
            W[b + 'mlp.up_proj.bias'] = g.n((I,), 0.1)
            W[b + 'mlp.down_proj.weight'] = g.n((E, I), I ** -0.5)
            W[b + 'mlp.down_proj.bias'] = g.n((E,), 0.1)
        else:
            I = int(E * vc['mlp_ratio'])
            W[b + 'mlp.fc1.weight'] = g.n((I, E), E ** -0.5 * 1.5)
            W[b + 'mlp.fc1.bias'] = g.n((I,), 0.1)
            W[b + 'mlp.fc2.weight'] = g.n((E, I), I ** -0.5)
            W[b + 'mlp.fc2.bias'] = g.n((E,), 0.1)
    Cm = E * vc['spatial_merge_size'] ** 2
    W[v + 'merger.ln_q.weight'] = g.n((E,), 0.15, 1.0)
    if not qwen25:
        W[v + 'merger.ln_q.bias'] = g.n((E,), 0.1)
    W[v + 'merger.mlp.0.weight'] = g.n((Cm, Cm), Cm ** -0.5 * 1.5)
    W[v + 'merger.mlp.0.bias'] = g.n((Cm,), 0.1)
    W[v + 'merger.mlp.2.weight'] = g.n((out_dim, Cm), Cm ** -0.5 * 1.5)
    W[v + 'merger.mlp.2.bias'] = g.n((out_dim,), 0.1)

    H = cfg['hidden_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = H // nh
    Im = cfg['intermediate_size']
    V = cfg['vocab_size']
    emb = g.n((V, H), embed_std)
    emb[n_tok:] *= 0.05            # padded rows past the tokenizer: small, never argmax
    W['model.embed_tokens.weight'] = emb
    for i in range(cfg['num_hidden_layers']):
        e = f'model.layers.{i}.'
        W[e + 'self_attn.q_proj.weight'] = g.n((nh * hd, H), H ** -0.5 * qk_scale)
        W[e + 'self_attn.q_proj.bias'] = g.n((nh * hd,), 0.3)
        W[e + 'self_attn.k_proj.weight'] = g.n((nkv * hd, H), H ** -0.5 * qk_scale)
        W[e + 'self_attn.k_proj.bias'] = g.n((nkv * hd,), 0.3)
        W[e + 'self_attn.v_proj.weight'] = g.n((nkv * hd, H), H ** -0.5)
        W[e + 'self_attn.v_proj.bias'] = g.n((nkv * hd,), 0.2)
        W[e + 'self_attn.o_proj.weight'] = g.n((H, nh * hd), (nh * hd) ** -0.5 * resid_scale)
        W[e + 'mlp.gate_proj.weight'] = g.n((Im, H), H ** -0.5)
        W[e + 'mlp.up_proj.weight'] = g.n((Im, H), H ** -0.5)
        W[e + 'mlp.down_proj.weight'] = g.n((H, Im), Im ** -0.5 * resid_scale)
        W[e + 'input_layernorm.weight'] = g.n((H,), 0.15, 1.0)
        W[e + 'post_attention_layernorm.weight'] = g.n((H,), 0.15, 1.0)
    W['model.norm.weight'] = g.n((H,), 0.15, lm_head_scale)
    if not cfg['tie_word_embeddings']:
        head = g.n((V, H), H ** -0.5 * lm_head_scale)
        head[n_tok:] *= 0.05
        W['lm_head.weight'] = head
    return W


# ---------------------------------------------------------------------------
# Fixture generation
# ---------------------------------------------------------------------------

IMAGE_QUESTION = "Describe this image."
TEXT_QUESTION = "Hello, who are you? Please answer in one sentence."
MAX_NEW_TOKENS = 8


def smart_resize_branch(h, w, factor, mn, mx):
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    return 'max_pixels (floor)' if hb * wb > mx else ('min_pixels (ceil)' if hb * wb < mn else 'round')


def build_variant(name, cfg, pp_cfg, weights_dtype, tok_files, added, special, pybpe, image_path, seed, wkw):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    write_files(d, tok_files)
    write_files(d, {'config.json': cfg, 'preprocessor_config.json': pp_cfg})
    n_tok = len(pybpe.vocab) + len(added)
    W = make_weights(cfg, seed, n_tok, **wkw)
    stored = {k: v.to(weights_dtype) for k, v in W.items()}
    st_path = os.path.join(d, 'model.safetensors')
    R.save_safetensors(st_path, stored, {"format": "pt"})

    print(f'[{name}] self-checks')
    back, meta = R.load_safetensors(st_path)
    check(meta == {"format": "pt"} and set(back) == set(stored), 'model.safetensors: same keys + metadata')
    check(all(bits_equal(back[k], stored[k]) for k in stored), 'model.safetensors round trip is bit-exact')
    check(('lm_head.weight' in back) == (not cfg['tie_word_embeddings']),
          f"lm_head.weight present == not tie_word_embeddings ({cfg['tie_word_embeddings']})")

    model = R.QwenVLRef(d)
    vc = cfg['vision_config']
    image = Image.open(image_path)
    pv, grid, resized, pre = R.preprocess_image(image, pp_cfg, return_intermediates=True)
    grid_thw = [list(grid)]
    oh, ow = image.size[1], image.size[0]
    check(resized[0] != oh and resized[1] != ow, f'smart_resize changes both sides: {oh}x{ow} -> {resized}')
    factor = pp_cfg['patch_size'] * pp_cfg['merge_size']
    branch = smart_resize_branch(oh, ow, factor, pp_cfg['min_pixels'], pp_cfg['max_pixels'])
    print('   smart_resize branch:', branch)

    # pixel_values sanity: un-patchify reproduces the normalized image, both frames identical
    t, gh, gw = grid
    p, m, tps = pp_cfg['patch_size'], pp_cfg['merge_size'], pp_cfg['temporal_patch_size']
    un = pv.numpy().reshape(t, gh // m, gw // m, m, m, 3, tps, p, p).transpose(0, 6, 5, 1, 3, 7, 2, 4, 8)
    un = un.reshape(t * tps, 3, gh * p, gw * p)
    check(np.array_equal(un[0], pre['normalized_hwc'].transpose(2, 0, 1)) and np.array_equal(un[0], un[1]),
          'pixel_values un-patchify == normalized image, frame 1 == frame 0')
    check(np.array_equal(np.array(image.convert('RGB').resize((resized[1], resized[0]), Image.BICUBIC)),
                         pre['resized_uint8']), 'resize == PIL BICUBIC')

    # patch embed: Conv3d == matmul with the flattened kernel
    pe_conv = model.visual.patch_embed(pv)
    w = model.W['visual.patch_embed.proj.weight']
    pe_mm = pv @ w.reshape(w.shape[0], -1).t()
    check(torch.allclose(pe_conv, pe_mm, atol=1e-4), 'Conv3d patch embed == flattened matmul')

    img_embeds, inter = model.image_features(pv, grid_thw, return_intermediates=True)
    n_img_tokens = (t * gh * gw) // (m * m)
    check(img_embeds.shape == (n_img_tokens, cfg['hidden_size']), f'merger output {tuple(img_embeds.shape)}')
    vision_info = {"cu_seqlens": inter['meta']['cu_seqlens']}
    if cfg['model_type'] == 'qwen2_5_vl':
        cuw = inter['meta']['cu_window_seqlens']
        sizes = [b - a for a, b in zip(cuw[:-1], cuw[1:])]
        n_windows = len(sizes)
        check(n_windows > 1 and len(set(sizes)) > 1,
              f'window attention uses {n_windows} windows of sizes {sizes} (patches)')
        full = model.image_features(pv, grid_thw, force_full_attention=True)
        diff = float((full - img_embeds).abs().max())
        check(diff > 1e-2, f'windowed vs all-full-attention vision output differ (max |diff| {diff:.3f})')
        check(inter['meta']['window_index'] != sorted(inter['meta']['window_index']),
              'window_index is a real permutation')
        vision_info.update({
            "window_size": vc['window_size'],
            "vit_merger_window_size": vc['window_size'] // vc['spatial_merge_size'] // vc['patch_size'],
            "window_index": inter['meta']['window_index'],
            "cu_window_seqlens": cuw,
            "num_windows": n_windows,
            "window_sizes_in_patches": sizes,
            "fullatt_block_indexes": vc['fullatt_block_indexes'],
        })

    js = run_tokjs(d, [{"op": "token_to_id", "token": c} for c in added])
    check(all(r['id'] == added[r['token']] for r in js), 'tokenizers.js ids of all added tokens')

    messages_img = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": IMAGE_QUESTION}]}]
    messages_txt = [{"role": "user", "content": [{"type": "text", "text": TEXT_QUESTION}]}]
    rendered = render_jinja(os.path.join(d, 'chat_template.json'), [
        {"messages": messages_img, "add_generation_prompt": True},
        {"messages": messages_txt, "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": TEXT_QUESTION}], "add_generation_prompt": True},
        {"messages": messages_img, "add_generation_prompt": True, "extra": {"add_vision_id": True}},
    ])
    check(rendered[0] == R.render_chat_prompt(messages_img) and rendered[1] == R.render_chat_prompt(messages_txt),
          '@huggingface/jinja chat template == hand port')
    check(rendered[2] == rendered[1], 'string content renders like a [text] list')
    check(rendered[3] == R.render_chat_prompt(messages_img, add_vision_id=True), 'add_vision_id rendering')

    eos_id = added['<|im_end|>']
    cases, tensors = {}, {'pixel_values': pv.contiguous()}
    tensors['image.patch_embed'] = inter['patch_embed'].contiguous()
    tensors['image.vision_rotary_freqs'] = inter['rotary_freqs'].contiguous()
    for i in range(vc['depth']):
        tensors[f'image.vision_block{i}_out'] = inter[f'block{i}'].contiguous()
    tensors['image.merger_out'] = img_embeds.contiguous()
    for case, messages, use_image in (('image', messages_img, True), ('text', messages_txt, False)):
        templ = rendered[0] if use_image else rendered[1]
        prompt = R.expand_image_tokens(templ, grid_thw, m) if use_image else templ
        enc, = run_tokjs(d, [{"op": "encode", "text": prompt}])
        ids = enc['ids']
        check(pybpe.encode(prompt)[0] == ids, f'{case}: tokenizers.js prompt ids == independent Python BPE ids')
        rt = run_tokjs(d, [{"op": "decode", "ids": ids, "skip_special_tokens": False}])[0]['text']
        check(rt == prompt, f'{case}: decode(prompt ids) == prompt')
        n_pad = ids.count(added['<|image_pad|>'])
        if use_image:
            check(n_pad == n_img_tokens, f'{case}: {n_pad} <|image_pad|> tokens == grid prod / merge^2')
        pvx, g = (pv, grid_thw) if use_image else (None, None)
        logits1, _, pos, delta = model.prompt_forward(ids, pvx, g)
        logits2, _, _, _ = model.prompt_forward(ids, pvx, g)
        check(torch.equal(logits1, logits2), f'{case}: prompt logits bit-identical across two runs')
        if use_image:
            ar = torch.arange(len(ids)).view(1, -1).expand(3, -1)
            check(not torch.equal(pos, ar) and delta < 0, f'{case}: mrope positions are not arange (delta {delta})')
            img_pos = pos[:, torch.tensor(ids) == added['<|image_pad|>']]
            check(len(set(img_pos[1].tolist())) > 1 and len(set(img_pos[2].tolist())) > 1
                  and not torch.equal(img_pos[1], img_pos[2]), f'{case}: image tokens have distinct h/w positions')
            # the LM is sensitive to the 3-D positions
            emb = model.inputs_embeds(ids, img_embeds)
            l_ar, _ = model.lm.forward(emb, ar)
            swapped = pos[[0, 2, 1]]
            l_sw, _ = model.lm.forward(emb, swapped)
            d_ar = float((l_ar[-1] - logits1[-1]).abs().max())
            d_sw = float((l_sw - logits1).abs().max())
            check(d_ar > 1e-2 and d_sw > 1e-3,
                  f'{case}: logits change with 1-D positions ({d_ar:.3f}) and with h/w swapped ({d_sw:.4f})')
            tensors[f'{case}.inputs_embeds'] = emb.contiguous()
        else:
            check(delta == 0 and torch.equal(pos, torch.arange(len(ids)).view(1, -1).expand(3, -1)),
                  f'{case}: text-only positions are arange, delta 0')
        gen, step = model.greedy_generate(ids, pvx, g, MAX_NEW_TOKENS, (eos_id,), use_cache=True)
        gen_f, step_f = model.greedy_generate(ids, pvx, g, MAX_NEW_TOKENS, (eos_id,), use_cache=False)
        check(gen == gen_f, f'{case}: KV-cache and full-recompute greedy agree: {gen}')
        kv_diff = float((step - step_f).abs().max())
        check(kv_diff < 1e-4, f'{case}: KV-cache vs recompute step logits max |diff| = {kv_diff:.2e}')
        check(torch.equal(step[0], logits1[-1]), f'{case}: first step logits == last prompt position')
        check(len(set(gen)) > 2, f'{case}: greedy tokens vary ({len(set(gen))} distinct)')
        check(all(x < len(pybpe.vocab) for x in gen), f'{case}: generated ids are plain BPE tokens')
        check(added['<|vision_start|>'] not in gen and added['<|image_pad|>'] not in gen,
              f'{case}: no vision tokens generated')
        mg = margins(step)
        check(min(mg) > 0.02, f'{case}: min top1-top2 margin {min(mg):.4f}')
        dec_full, dec_skip = run_tokjs(d, [{"op": "decode", "ids": gen, "skip_special_tokens": False},
                                           {"op": "decode", "ids": gen, "skip_special_tokens": True}])
        check(dec_full['text'] == pybpe.decode(gen) and dec_skip['text'] == pybpe.decode(gen, True),
              f'{case}: decode of generated ids agrees with the Python decoder')
        T = len(ids)
        cases[case] = {
            "messages": messages,
            "prompt_from_chat_template": templ,
            "prompt": prompt,
            "input_ids": ids,
            "prompt_tokens": enc['tokens'],
            "num_prompt_tokens": T,
            "num_image_pad_tokens": n_pad,
            "image_grid_thw": grid_thw if use_image else None,
            "position_ids": pos.tolist(),
            "rope_deltas": delta,
            "decode_position_ids": [T + i + delta for i in range(len(gen))],
            "first_step_argmax": int(torch.argmax(logits1[-1])),
            "generated_ids": gen,
            "generated_text": dec_full['text'],
            "generated_text_skip_special": dec_skip['text'],
            "stopped_on_eos": bool(gen and gen[-1] == eos_id),
            "kv_cache_vs_recompute_max_abs_diff": kv_diff,
            "greedy_top1_top2_margins": [round(x, 6) for x in mg],
            "min_margin": round(min(mg), 6),
        }
        tensors[f'{case}.position_ids'] = pos.contiguous()
        tensors[f'{case}.prompt_logits'] = logits1.contiguous()
        tensors[f'{case}.first_step_logits'] = logits1[-1].contiguous()
        tensors[f'{case}.generated_step_logits'] = step.contiguous()
    R.save_safetensors(os.path.join(d, 'expected.safetensors'), tensors, {"format": "pt"})
    back, _ = R.load_safetensors(os.path.join(d, 'expected.safetensors'))
    check(set(back) == set(tensors) and all(bits_equal(back[k], tensors[k]) for k in tensors),
          'expected.safetensors round trip is exact')

    expected = {
        "description": f"Expected outputs of {cfg['architectures'][0]} (HF transformers 4.53 semantics) for this "
                       "checkpoint, computed by tools/reference/qwen2vl/qwen2vl_ref.py (plain PyTorch, float32), "
                       "tokenizers.js and @huggingface/jinja.",
        "generator": {
            "script": "tools/reference/qwen2vl/make_fixtures.py",
            "transformers_semantics": "4.53 (modeling at commit 00b676f8f048)",
            "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "python": sys.version.split()[0], "compute_dtype": "float32",
            "weights_stored_dtype": str(weights_dtype).replace('torch.', ''),
            "weights_seed": seed, "weights_scales": wkw,
            "tokenizer": "@huggingface/tokenizers 0.2.0 (tokenizers.js)",
            "chat_template": "@huggingface/jinja 0.5.11",
        },
        "preprocess": {
            "image": "../image.png",
            "original_size_hw": [oh, ow],
            "resized_size_hw": list(resized),
            "factor": factor,
            "min_pixels": pp_cfg['min_pixels'],
            "max_pixels": pp_cfg['max_pixels'],
            "smart_resize_branch": branch,
            "resample": "PIL BICUBIC (3) on the uint8 RGB image",
            "rescale": "uint8 -> float64 * rescale_factor -> float32",
            "normalize": "float32 (x - mean) / std, OPENAI_CLIP mean/std as float32",
            "image_grid_thw": grid_thw,
            "pixel_values_shape": list(pv.shape),
            "patch_order": "reshape(t, tps, C, gh/m, m, p, gw/m, m, p).transpose(0,3,6,4,7,2,1,5,8); "
                           "row = (t, bh, bw, mh, mw), col = (C, tps, py, px); a single image is repeated "
                           "to temporal_patch_size frames",
        },
        "vision": vision_info,
        "num_image_tokens": n_img_tokens,
        "image_token": "<|image_pad|>", "image_token_id": added['<|image_pad|>'],
        "vision_start_token_id": added['<|vision_start|>'], "vision_end_token_id": added['<|vision_end|>'],
        "eos_token": "<|im_end|>", "eos_token_id": eos_id,
        "tie_word_embeddings": cfg['tie_word_embeddings'],
        "generation": {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False, "num_beams": 1,
                       "eos_token_id": eos_id,
                       "note": "generated_ids include the eos id if it was produced (generation stops there); "
                               "decode step i (0-based, after the prompt) uses position T + i + rope_deltas in "
                               "all three M-RoPE rows"},
        "cases": cases,
        "tensors": {
            "pixel_values": "[grid_t*grid_h*grid_w, 3*tps*p*p] float32, image processor output",
            "image.patch_embed": "[N, C_vis] PatchEmbed (Conv3d) output, original patch order",
            "image.vision_rotary_freqs": "[N, head_dim/2] rot_pos_emb (h freqs then w freqs), original order",
            "image.vision_block{i}_out": "[N, C_vis] output of vision block i, in ORIGINAL patch order "
                                         "(Qwen2.5-VL computes in window order; un-permuted here)",
            "image.merger_out": "[num_image_tokens, hidden] PatchMerger output = image features (final order)",
            "image.inputs_embeds": "[T, hidden] LM input after the image features replace <|image_pad|> rows",
            "<case>.position_ids": "[3, T] int64 get_rope_index output (rows t, h, w)",
            "<case>.prompt_logits": "[T, vocab] logits at every prompt position",
            "<case>.first_step_logits": "[vocab] logits at the last prompt position",
            "<case>.generated_step_logits": "[n_generated, vocab] logits used to pick each greedy token",
        },
    }
    write_json(os.path.join(d, 'expected.json'), expected)
    return expected


SMART_RESIZE_CASES = [
    # (height, width, factor, min_pixels, max_pixels)
    (90, 150, 28, 3136, 9408), (90, 150, 28, 15680, 50176), (90, 150, 28, 3136, 12845056),
    (42, 42, 28, 3136, 12845056),     # 42/28 = 1.5 -> round half to even -> 2
    (70, 70, 28, 3136, 12845056),     # 2.5 -> 2 (banker's rounding), then min_pixels ceil branch
    (98, 126, 28, 3136, 12845056),    # 3.5 -> 4, 4.5 -> 4
    (28, 28, 28, 3136, 12845056), (28, 5600, 28, 3136, 12845056),
    (1080, 1920, 28, 3136, 12845056), (1080, 1920, 28, 3136, 1003520),
    (480, 640, 28, 200704, 1003520), (1000, 30, 28, 3136, 12845056), (224, 224, 28, 3136, 12845056),
    (333, 777, 28, 3136, 602112), (2000, 3000, 28, 3136, 12845056), (100, 100, 32, 4096, 16777216),
]


def smart_resize_cases():
    out = []
    for h, w, f, mn, mx in SMART_RESIZE_CASES:
        rh, rw = R.smart_resize(h, w, factor=f, min_pixels=mn, max_pixels=mx)
        out.append({"height": h, "width": w, "factor": f, "min_pixels": mn, "max_pixels": mx,
                    "resized_height": rh, "resized_width": rw, "branch": smart_resize_branch(h, w, f, mn, mx)})
    return out


TOKENIZER_TEXTS = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>Describe this image.",
    "<tool_call>{\"name\": \"f\"}</tool_call><|fim_prefix|>",
    "Hello, who are you?  I'm fine!\n\n",
    "请详细描述这张图片。",
    "<|box_start|>(10,20),(30,40)<|box_end|>",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    require_node_modules()
    vocab, merges = train_bpe(CORPUS, N_BPE_VOCAB)
    print(f'tokenizer: {len(vocab)} BPE tokens, {len(merges)} merges')

    image_path = os.path.join(OUT, 'image.png')
    make_image(image_path)

    with open(os.path.join(OUT, 'smart_resize_cases.json'), 'w', encoding='utf-8', newline='\n') as f:
        json.dump({"description": "image_processing_qwen2_vl.smart_resize(height, width, factor, min_pixels, "
                                  "max_pixels) -> (resized_height, resized_width); Python round() is "
                                  "round-half-to-even", "cases": smart_resize_cases()}, f, indent=2)
        f.write('\n')

    results = {}
    tok_cases = {"description": "tokenizers.js encode/decode of the two fixture tokenizers, cross-checked "
                                "against an independent Python byte-level BPE", "variants": {}}
    # seeds / scales chosen so that greedy decoding does not repeat one token and the top-1/top-2
    # margins stay well above float32 noise (the tied Qwen2.5-VL variant needs a smaller embedding
    # and stronger residual branches, otherwise it echoes its own input token)
    for name, added_list, make_cfg, proc_cls, mn, mx, dtype, seed, wkw in (
            ('qwen2-vl', QWEN2VL_ADDED, qwen2vl_config, 'Qwen2VLProcessor', 3136, 9408, torch.float32, 3102,
             dict(lm_head_scale=3.0, embed_std=1.0, resid_scale=1.0)),
            ('qwen2.5-vl', QWEN25VL_ADDED, qwen25vl_config, 'Qwen2_5_VLProcessor', 15680, 50176,
             torch.bfloat16, 5208, dict(lm_head_scale=3.0, embed_std=0.3, resid_scale=3.0))):
        tok_files, added, special = tokenizer_files(vocab, merges, added_list, name)
        pybpe = PyBPE(vocab, merges, added, special)
        cfg = make_cfg(added)
        pp_cfg = preprocessor_config(mn, mx, proc_cls)
        results[name] = build_variant(name, cfg, pp_cfg, dtype, tok_files, added, special, pybpe, image_path,
                                      seed, wkw)
        d = os.path.join(OUT, name)
        enc = run_tokjs(d, [{"op": "encode", "text": t} for t in TOKENIZER_TEXTS])
        for e in enc:
            check(pybpe.encode(e['text']) == (e['ids'], e['tokens']), f'[{name}] tokenizers.js == Python BPE '
                                                                       f'for {e["text"][:30]!r}')
        dec = run_tokjs(d, [{"op": "decode", "ids": e['ids'], "skip_special_tokens": s}
                            for e in enc for s in (False, True)])
        for r in dec:
            check(r['text'] == pybpe.decode(r['ids'], r['skip_special_tokens']),
                  f'[{name}] decode agrees with Python (skip={r["skip_special_tokens"]})')
        tok_cases["variants"][name] = {
            "tokenizer": f"{name}/tokenizer.json", "bpe_vocab_size": len(vocab), "num_merges": len(merges),
            "added_tokens": added, "special_added_tokens": special,
            "encode": enc, "decode": dec}
    write_json(os.path.join(OUT, 'tokenizer_cases.json'), tok_cases)

    print('summary:')
    for name, e in results.items():
        for case, c in e['cases'].items():
            print(f"  {name:10s} {case:5s} T={c['num_prompt_tokens']:3d} pads={c['num_image_pad_tokens']:2d} "
                  f"delta={c['rope_deltas']:4d} gen={c['generated_ids']} min_margin={c['min_margin']:.4f}")
        if 'num_windows' in e['vision']:
            print(f"  {name}: {e['vision']['num_windows']} windows, sizes {e['vision']['window_sizes_in_patches']}")
    print(f'fixtures written to {OUT}: {total_size(OUT) / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
