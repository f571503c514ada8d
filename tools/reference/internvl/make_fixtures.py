#!/usr/bin/python3
"""Create the InternVL2.5 test fixtures for GenRecal.Tests (deterministic, seeded).

Run with Debian's python3 (PyTorch 1.13 CPU, numpy, Pillow, python3-regex), from any directory:
    (cd tools/reference/common && npm ci) && /usr/bin/python3 tools/reference/internvl/make_fixtures.py

Writes tests/GenRecal.Tests/Fixtures/internvl/:
    image.png, tokenizer_cases.json,
    internvl2_5-qwen2/{config.json, model.safetensors, tokenizer files, expected.json, expected.safetensors}
    internvl2_5-llama-6bvit/{...same...}
Everything numeric comes from internvl_ref.py; every token id comes from tokenizers.js
(tools/reference/common/tokenize.mjs) and is cross-checked against an independent Python byte-level BPE.
The BPE trainer/encoder, the tokenizer-file building blocks and the fixture scaffolding are shared with
the other references (tools/reference/common/refcommon).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'common'))
import internvl_ref as R  # noqa: E402
from refcommon.bpe import BYTE_ENC, PyBPE, train_bpe  # noqa: E402
from refcommon.fixtures import (Gen, check, draw_random_shapes, fixtures_dir, require_node_modules,  # noqa: E402
                                rounded_margins, run_tokjs, total_size, write_files, write_json)
from refcommon.safetensors_io import bits_equal  # noqa: E402
from refcommon.tokenizer_files import (added_token_decoder, added_token_entry, added_tokens_json,  # noqa: E402
                                       merges_txt, qwen2_tokenizer_json, special_token_map_entry)

OUT = fixtures_dir('internvl')

torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions

# ---------------------------------------------------------------------------
# Tokenizer: small Qwen2-style byte-level BPE
# ---------------------------------------------------------------------------

N_BPE_VOCAB = 600  # 256 byte symbols + learned merges
# Added tokens, in InternVL2.5's order (Qwen2 specials first, then InternVL's), ids after the BPE vocab.
ADDED_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>',
                '<img>', '</img>', '<IMG_CONTEXT>', '<quad>', '</quad>', '<ref>', '</ref>', '<box>', '</box>']

CORPUS = """
The quick brown fox jumps over the lazy dog. What is in the picture? Please describe the image in detail.
There is a red square, a blue circle and a green triangle on a white background. The picture shows
a small house with a garden, two trees and a cat sitting near the door. I have 123 apples and 45 oranges.
Prices: $4.50 and 1,000,000 items! The weather today is sunny, with a light wind from the north.
Hello, who are you? I am an AI assistant. I can help you understand images, answer questions, and write text.
What is the capital of France? The capital of France is Paris. Describe this image in one sentence.
She said: "don't worry, we'll be there soon." They're going to the market, and I'm staying here.
You've seen it before; it's the same picture as yesterday. We'd like to know what you think about it.
The image contains several colorful shapes: rectangles, ellipses and lines drawn over a smooth gradient.
Can you count the objects in the picture? There are three objects: one circle and two rectangles.
The model reads the image as tiles, and each tile becomes a few visual tokens for the language model.
In the picture, the sky is blue and the grass is green. A person is walking a dog along the river.
Numbers like 2024, 3.14159 and 42 appear in the text, as well as dates such as 12/25/2023.
user assistant system image picture question answer describe detail color shape object
你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。
你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。
请详细描述这张图片。图片中有什么？这是一张彩色的图片，上面有红色的正方形、蓝色的圆形和绿色的三角形。
请根据图片写一首诗。这两张图片的相同点和区别分别是什么？你好，请问你是谁？我是一个人工智能助手。
今天天气很好，我们去公园散步吧。模型把图片分成小块，每一块变成几个视觉标记。
"""


def tokenizer_files(vocab, merges):
    """Return {filename: json-able or str} for the Qwen2-style tokenizer."""
    n = len(vocab)
    added = {c: n + i for i, c in enumerate(ADDED_TOKENS)}
    tok_json = qwen2_tokenizer_json(vocab, merges, [added_token_entry(added[c], c) for c in ADDED_TOKENS])
    additional = [c for c in ADDED_TOKENS if c != '<|endoftext|>']
    tok_cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(added[c]): added_token_decoder(c) for c in ADDED_TOKENS},
        "additional_special_tokens": additional,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 8192,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    special_map = {
        "additional_special_tokens": additional,
        "eos_token": special_token_map_entry("<|im_end|>"),
        "pad_token": special_token_map_entry("<|endoftext|>"),
    }
    return {
        'tokenizer.json': tok_json,
        'tokenizer_config.json': tok_cfg,
        'special_tokens_map.json': special_map,
        'added_tokens.json': added_tokens_json(added),
        'vocab.json': vocab,
        'merges.txt': merges_txt(merges),
    }, added


# ---------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------

def make_image(path):
    rng = np.random.RandomState(1234)
    W, H = 150, 90
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    base = np.stack([255 * xx / (W - 1), 255 * yy / (H - 1), 255 * (1 - xx / (W - 1)) * 0.6 + 40], -1)
    base += rng.normal(0, 6, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), 'RGB')
    draw_random_shapes(img, rng, 7, 4)
    img.save(path, format='PNG', optimize=False)


# ---------------------------------------------------------------------------
# Model configs and weights
# ---------------------------------------------------------------------------

AUTO_MAP = {
    "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
    "AutoModel": "modeling_internvl_chat.InternVLChatModel",
    "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
}


def vision_config(hidden, layers, heads, inter, image_size, patch, qkv_bias, qk_norm, norm_type, init_factor,
                  dtype):
    # key set mirrors InternVisionConfig (configuration_intern_vit.py) as serialized in InternVL2.5 configs
    return {
        "architectures": ["InternVisionModel"],
        "attention_dropout": 0.0,
        "drop_path_rate": 0.0,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": hidden,
        "image_size": image_size,
        "initializer_factor": init_factor,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "layer_norm_eps": 1e-06,
        "model_type": "intern_vit_6b",
        "norm_type": norm_type,
        "num_attention_heads": heads,
        "num_channels": 3,
        "num_hidden_layers": layers,
        "output_attentions": False,
        "output_hidden_states": False,
        "patch_size": patch,
        "qk_normalization": qk_norm,
        "qkv_bias": qkv_bias,
        "return_dict": True,
        "torch_dtype": dtype,
        "use_bfloat16": dtype == "bfloat16",
        "use_flash_attn": False,
    }


def qwen2_config(vocab_size, bos, eos):
    # key set mirrors the llm_config of OpenGVLab/InternVL2_5-1B (Qwen2.5-0.5B-Instruct based)
    return {
        "_name_or_path": "tiny-qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_bfloat16": False,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }


def llama_config(vocab_size, bos, eos):
    # key set mirrors a Llama-3 llm_config (InternVL2-Llama3-76B style)
    return {
        "_name_or_path": "tiny-llama",
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": 96,
        "initializer_range": 0.02,
        "intermediate_size": 160,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 6,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_bfloat16": True,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def chat_config(vision, llm, template, force_image_size, select_layer, max_dynamic_patch, dtype):
    # top-level keys mirror InternVLChatConfig.to_dict() as shipped in InternVL2.5 config.json files
    return {
        "_commit_hash": None,
        "architectures": ["InternVLChatModel"],
        "auto_map": AUTO_MAP,
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": force_image_size,
        "hidden_size": llm["hidden_size"],
        "llm_config": llm,
        "max_dynamic_patch": max_dynamic_patch,
        "min_dynamic_patch": 1,
        "model_type": "internvl_chat",
        "pad2square": False,
        "ps_version": "v2",
        "select_layer": select_layer,
        "template": template,
        "tie_word_embeddings": False,
        "torch_dtype": dtype,
        "transformers_version": None,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": vision,
    }


def make_weights(cfg, seed):
    g = Gen(seed)
    W = {}
    vc, lc = cfg['vision_config'], cfg['llm_config']
    C, p, L = vc['hidden_size'], vc['patch_size'], vc['num_hidden_layers']
    I = vc['intermediate_size']
    grid = vc['image_size'] // p
    v = 'vision_model.'
    W[v + 'embeddings.class_embedding'] = g.n((1, 1, C), 0.5)
    W[v + 'embeddings.patch_embedding.weight'] = g.n((C, 3, p, p), (3 * p * p) ** -0.5 * 1.5)
    W[v + 'embeddings.patch_embedding.bias'] = g.n((C,), 0.1)
    W[v + 'embeddings.position_embedding'] = g.n((1, 1 + grid * grid, C), 0.5)
    for i in range(L):
        e = f'{v}encoder.layers.{i}.'
        W[e + 'attn.qkv.weight'] = g.n((3 * C, C), C ** -0.5 * 1.5)
        if vc['qkv_bias']:
            W[e + 'attn.qkv.bias'] = g.n((3 * C,), 0.1)
        if vc['qk_normalization']:
            W[e + 'attn.q_norm.weight'] = g.n((C,), 0.15, 1.0)
            W[e + 'attn.k_norm.weight'] = g.n((C,), 0.15, 1.0)
        W[e + 'attn.proj.weight'] = g.n((C, C), C ** -0.5)
        W[e + 'attn.proj.bias'] = g.n((C,), 0.1)
        W[e + 'mlp.fc1.weight'] = g.n((I, C), C ** -0.5)
        W[e + 'mlp.fc1.bias'] = g.n((I,), 0.1)
        W[e + 'mlp.fc2.weight'] = g.n((C, I), I ** -0.5)
        W[e + 'mlp.fc2.bias'] = g.n((C,), 0.1)
        for nm in ('norm1', 'norm2'):
            W[e + nm + '.weight'] = g.n((C,), 0.15, 1.0)
            if vc['norm_type'] == 'layer_norm':
                W[e + nm + '.bias'] = g.n((C,), 0.1)
        # layer scales: clearly not all ones (real InternViT ls values vary per channel)
        W[e + 'ls1'] = g.u((C,), 0.3, 1.2)
        W[e + 'ls2'] = g.u((C,), 0.3, 1.2)
    Cp = C * 4  # vit_hidden * int(1/downsample_ratio)**2
    Hd = lc['hidden_size']
    W['mlp1.0.weight'] = g.n((Cp,), 0.15, 1.0)
    W['mlp1.0.bias'] = g.n((Cp,), 0.1)
    W['mlp1.1.weight'] = g.n((Hd, Cp), Cp ** -0.5 * 1.5)
    W['mlp1.1.bias'] = g.n((Hd,), 0.1)
    W['mlp1.3.weight'] = g.n((Hd, Hd), Hd ** -0.5)
    W['mlp1.3.bias'] = g.n((Hd,), 0.1)
    V = lc['vocab_size']
    nh, nkv = lc['num_attention_heads'], lc['num_key_value_heads']
    hd = Hd // nh
    Im = lc['intermediate_size']
    qwen = lc['architectures'][0] == 'Qwen2ForCausalLM'
    m = 'language_model.model.'
    W[m + 'embed_tokens.weight'] = g.n((V, Hd), 1.0)
    for i in range(lc['num_hidden_layers']):
        e = f'{m}layers.{i}.'
        W[e + 'self_attn.q_proj.weight'] = g.n((nh * hd, Hd), Hd ** -0.5 * 1.5)
        W[e + 'self_attn.k_proj.weight'] = g.n((nkv * hd, Hd), Hd ** -0.5 * 1.5)
        W[e + 'self_attn.v_proj.weight'] = g.n((nkv * hd, Hd), Hd ** -0.5)
        if qwen:
            W[e + 'self_attn.q_proj.bias'] = g.n((nh * hd,), 0.2)
            W[e + 'self_attn.k_proj.bias'] = g.n((nkv * hd,), 0.2)
            W[e + 'self_attn.v_proj.bias'] = g.n((nkv * hd,), 0.2)
        W[e + 'self_attn.o_proj.weight'] = g.n((Hd, nh * hd), (nh * hd) ** -0.5)
        W[e + 'mlp.gate_proj.weight'] = g.n((Im, Hd), Hd ** -0.5)
        W[e + 'mlp.up_proj.weight'] = g.n((Im, Hd), Hd ** -0.5)
        W[e + 'mlp.down_proj.weight'] = g.n((Hd, Im), Im ** -0.5)
        W[e + 'input_layernorm.weight'] = g.n((Hd,), 0.15, 1.0)
        W[e + 'post_attention_layernorm.weight'] = g.n((Hd,), 0.15, 1.0)
    W[m + 'norm.weight'] = g.n((Hd,), 0.15, 1.0)
    W['language_model.lm_head.weight'] = g.n((V, Hd), Hd ** -0.5 * 3.0)
    return W


# ---------------------------------------------------------------------------
# Fixture generation
# ---------------------------------------------------------------------------

IMAGE_QUESTION = "<image>\nWhat is in the picture?"
TEXT_QUESTION = "Hello, who are you? Please answer in one sentence."
MAX_NEW_TOKENS = 8


def build_variant(name, cfg, weights_dtype, tok_files, added, pybpe, image_path, seed):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    write_files(d, tok_files)
    write_json(os.path.join(d, 'config.json'), cfg)
    W = make_weights(cfg, seed)
    stored = {k: v.to(weights_dtype) for k, v in W.items()}
    st_path = os.path.join(d, 'model.safetensors')
    R.save_safetensors(st_path, stored, {"format": "pt"})

    print(f'[{name}] self-checks')
    back, meta = R.load_safetensors(st_path)
    check(meta == {"format": "pt"} and set(back) == set(stored), 'safetensors reader sees same keys + metadata')
    check(all(bits_equal(back[k], stored[k]) for k in stored), 'safetensors round trip is bit-exact')

    model = R.InternVLChatRef(d)
    vc = cfg['vision_config']
    S = model.image_size
    pv, grid = R.load_image(image_path, input_size=S, max_num=cfg['max_dynamic_patch'],
                            min_num=cfg['min_dynamic_patch'])
    num_patches = pv.shape[0]

    # resize filter used by dynamic_preprocess == BICUBIC (PIL default for RGB)
    im = Image.open(image_path).convert('RGB')
    check(np.array_equal(np.array(im.resize((S, S))), np.array(im.resize((S, S), Image.BICUBIC))),
          'PIL Image.resize default == BICUBIC for RGB')

    # position embedding: identity interpolation when grids agree, real interpolation otherwise
    g = vc['image_size'] // vc['patch_size']
    pe = model.W['vision_model.embeddings.position_embedding'][:, 1:, :]
    if g == S // vc['patch_size']:
        check(torch.allclose(model.vit._get_pos_embed(pe, g, g), pe, atol=1e-6),
              'bicubic pos-embed interpolation is identity at the native grid')
    else:
        gi = S // vc['patch_size']
        check(model.vit._get_pos_embed(pe, gi, gi).shape == (1, gi * gi, pe.shape[-1]),
              f'pos-embed is bicubically interpolated {g}x{g} -> {gi}x{gi}')

    # layer scales are used
    vit_a, feats = model.extract_feature(pv, return_intermediates=True)
    key = 'vision_model.encoder.layers.0.ls1'
    saved = model.W[key].clone()
    model.W[key] = saved * 1.5
    vit_b = model.extract_feature(pv)
    model.W[key] = saved
    check(not torch.allclose(vit_a, vit_b), 'InternViT output changes when ls1 changes')

    # tokenizer ids via tokenizers.js
    tok_dir = d
    img_ctx_id = added['<IMG_CONTEXT>']
    js = run_tokjs(tok_dir, [{"op": "token_to_id", "token": t} for t in ('<IMG_CONTEXT>', '<img>', '</img>')])
    check(js[0]['id'] == img_ctx_id, 'tokenizers.js id of <IMG_CONTEXT> matches')

    cases = {}
    tensors = {'pixel_values': pv.contiguous()}
    for case, question, pixel_values in (('image', IMAGE_QUESTION, pv), ('text', TEXT_QUESTION, None)):
        query, eos_tok, final_q = R.build_chat_query(
            model.template, question, [num_patches] if pixel_values is not None else None,
            model.num_image_token, has_image=pixel_values is not None, system_message=model.system_message)
        enc, eos_js = run_tokjs(tok_dir, [{"op": "encode", "text": query},
                                          {"op": "token_to_id", "token": eos_tok}])
        ids = enc['ids']
        py_ids, _ = pybpe.encode(query)
        check(py_ids == ids, f'{case}: tokenizers.js prompt ids == independent Python BPE ids')
        eos_id = eos_js['id']
        check(eos_id == added['<|im_end|>'], f'{case}: eos token {eos_tok!r} -> {eos_id}')
        rt = run_tokjs(tok_dir, [{"op": "decode", "ids": ids, "skip_special_tokens": False}])[0]['text']
        check(rt == query, f'{case}: tokenizers.js decode(prompt ids) == prompt string')
        input_ids = torch.tensor(ids, dtype=torch.long)
        n_ctx = int((input_ids == img_ctx_id).sum())
        if pixel_values is not None:
            check(n_ctx == model.num_image_token * num_patches, f'{case}: {n_ctx} IMG_CONTEXT tokens')
        vit = model.extract_feature(pixel_values) if pixel_values is not None else None
        emb = model.input_embeds(input_ids, img_ctx_id, vit)
        logits1 = model.prompt_logits(input_ids, img_ctx_id, pixel_values)
        logits2 = model.prompt_logits(input_ids, img_ctx_id, pixel_values)
        check(torch.equal(logits1, logits2), f'{case}: logits bit-identical across two runs')
        gen, step_logits = model.greedy_generate(input_ids, img_ctx_id, pixel_values, MAX_NEW_TOKENS, eos_id, True)
        gen_full, step_full = model.greedy_generate(input_ids, img_ctx_id, pixel_values, MAX_NEW_TOKENS, eos_id,
                                                    False)
        check(gen == gen_full, f'{case}: KV-cache and full-recompute greedy agree: {gen}')
        kv_diff = float((step_logits - step_full).abs().max())
        check(kv_diff < 1e-4, f'{case}: KV-cache vs recompute step logits max |diff| = {kv_diff:.2e}')
        check(torch.allclose(step_logits[0], logits1[-1]), f'{case}: first step logits == last prompt position')
        check(len(set(gen)) > 1, f'{case}: greedy tokens are not all identical')
        dec_full, dec_skip = run_tokjs(tok_dir, [{"op": "decode", "ids": gen, "skip_special_tokens": False},
                                                 {"op": "decode", "ids": gen, "skip_special_tokens": True}])
        check(dec_full['text'] == pybpe.decode(gen) and dec_skip['text'] == pybpe.decode(gen, True),
              f'{case}: generated-id decode agrees with Python decoder')
        # chat() post-processing: batch_decode(skip_special_tokens=True) -> split(sep.strip())[0].strip()
        response = dec_skip['text'].split(eos_tok)[0].strip()
        cases[case] = {
            "question": question,
            "question_after_chat_rewrite": final_q,
            "prompt": query,
            "input_ids": ids,
            "prompt_tokens": enc['tokens'],
            "num_prompt_tokens": len(ids),
            "num_img_context_tokens": n_ctx,
            "first_step_argmax": int(torch.argmax(logits1[-1])),
            "generated_ids": gen,
            "generated_text": dec_full['text'],
            "generated_text_skip_special": dec_skip['text'],
            "chat_response": response,
            "stopped_on_eos": bool(gen and gen[-1] == eos_id),
            "kv_cache_vs_recompute_max_abs_diff": kv_diff,
            "greedy_top1_top2_margins": rounded_margins(step_logits),
        }
        if case == 'image':  # text-case prompt logits/embeds left out to keep the fixtures < 3 MB
            tensors[f'{case}.inputs_embeds'] = emb.contiguous()
            tensors[f'{case}.prompt_logits'] = logits1.contiguous()
        tensors[f'{case}.first_step_logits'] = logits1[-1].contiguous()
        tensors[f'{case}.generated_step_logits'] = step_logits.contiguous()
    tensors['image.vision_embeddings'] = feats['vision_embeddings'].contiguous()
    tensors['image.vision_selected_hidden'] = feats['vision_selected_hidden'].contiguous()
    tensors['image.pixel_shuffled'] = feats['pixel_shuffled'].contiguous()
    tensors['image.vit_embeds'] = vit_a.contiguous()
    R.save_safetensors(os.path.join(d, 'expected.safetensors'), tensors, {"format": "pt"})
    back, _ = R.load_safetensors(os.path.join(d, 'expected.safetensors'))
    check(all(torch.equal(back[k], tensors[k]) for k in tensors), 'expected.safetensors round trip is exact')

    expected = {
        "description": "Expected outputs of InternVLChatModel.chat() for this checkpoint, computed by "
                       "tools/reference/internvl/internvl_ref.py (plain PyTorch, float32) and tokenizers.js.",
        "generator": {
            "script": "tools/reference/internvl/make_fixtures.py",
            "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "python": sys.version.split()[0], "compute_dtype": "float32",
            "weights_stored_dtype": str(weights_dtype).replace('torch.', ''),
            "tokenizer": "@huggingface/tokenizers 0.2.0 (tokenizers.js)",
        },
        "preprocess": {
            "image": "../image.png",
            "image_size_wh": list(Image.open(image_path).size),
            "input_size": S,
            "min_num": cfg['min_dynamic_patch'],
            "max_num": cfg['max_dynamic_patch'],
            "use_thumbnail": True,
            "target_grid_cols_rows": [int(grid[0]), int(grid[1])],
            "num_tiles_without_thumbnail": int(grid[0] * grid[1]),
            "num_patches": num_patches,
            "tile_order": "row-major over the resized (cols*S x rows*S) image, thumbnail last",
            "resize_filters": {
                "resize_to_grid": "PIL Image.resize((cols*S, rows*S)) with Pillow's default resample = BICUBIC",
                "thumbnail": "PIL Image.resize((S, S)) from the original image, default resample = BICUBIC",
                "build_transform_resize": "T.Resize((S,S), BICUBIC) is an identity on the S x S tiles",
            },
            "mean": list(R.IMAGENET_MEAN), "std": list(R.IMAGENET_STD),
            "to_tensor": "uint8 / 255 in float32, then (x - mean) / std in float32",
        },
        "num_image_token": model.num_image_token,
        "image_size_used": S,
        "vision_image_size": vc['image_size'],
        "select_layer": model.select_layer,
        "template": model.template,
        "system_message": model.system_message,
        "img_context_token": "<IMG_CONTEXT>", "img_context_token_id": img_ctx_id,
        "img_start_token_id": added['<img>'], "img_end_token_id": added['</img>'],
        "eos_token": "<|im_end|>", "eos_token_id": added['<|im_end|>'],
        "generation": {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False, "num_beams": 1,
                       "eos_token_id": added['<|im_end|>'],
                       "note": "generated_ids include the eos id if it was produced (generation stops there)"},
        "cases": cases,
        "tensors": {
            "pixel_values": "[num_patches, 3, S, S] float32, load_image output",
            "image.vision_embeddings": "[num_patches, 1+(S/p)^2, C_vit] InternVisionEmbeddings output "
                                       "(class token + patches + interpolated position embedding)",
            "image.vision_selected_hidden": "[num_patches, 1+(S/p)^2, C_vit] last_hidden_state or "
                                            "hidden_states[select_layer]",
            "image.pixel_shuffled": "[num_patches, num_image_token, 4*C_vit] after pixel_shuffle(v2) + reshape, "
                                    "before mlp1",
            "image.vit_embeds": "[num_patches, num_image_token, H_llm] extract_feature output (after mlp1)",
            "image.inputs_embeds": "[T, H_llm] LM input embeddings after IMG_CONTEXT replacement (image case only)",
            "image.prompt_logits": "[T, vocab] logits at every prompt position (image case only)",
            "<case>.first_step_logits": "[vocab] logits at the last prompt position",
            "<case>.generated_step_logits": "[n_generated, vocab] logits used to pick each greedy token",
        },
    }
    write_json(os.path.join(d, 'expected.json'), expected)
    return expected


TOKENIZER_TEXTS = [
    "I have 123 apples",
    "Prices: $4.50 and 1,000,000 items!",
    "  leading spaces\n\nand\ttabs  ",
    "don't You'RE",
    "你是书生·万象，英文名是InternVL。",
    "今天天气很好，我们去公园散步吧！",
    "emoji 😀👍🏽 and ✨",
    "<|im_start|>user\nhi<|im_end|>",
    "<img><IMG_CONTEXT><IMG_CONTEXT></img>",
    "e\u0301",
    "\u00e9",
    "caf\u0065\u0301 vs caf\u00e9",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "line1\r\nline2\n\n\n   end",
    "<ref>the cat</ref><box>[[10, 20, 30, 40]]</box>",
    "What is in the picture?",
    "",
]


TILING_CASES = [
    # (width, height, image_size, min_num, max_num)
    (150, 90, 56, 1, 6), (150, 90, 56, 1, 4), (150, 90, 448, 1, 12),
    (448, 448, 448, 1, 12), (1000, 1000, 448, 1, 12), (1000, 1000, 448, 1, 6), (896, 896, 448, 1, 12),
    (1000, 500, 448, 1, 12), (500, 1000, 448, 1, 12), (800, 600, 448, 1, 12), (1920, 1080, 448, 1, 12),
    (30, 10, 448, 1, 12), (2000, 100, 448, 1, 12), (100, 2000, 448, 1, 6), (640, 480, 448, 2, 6),
    (300, 200, 448, 1, 1),
]


def tiling_cases():
    """dynamic_preprocess grid choice (README find_closest_aspect_ratio), incl. the area tie-break."""
    out = []
    for w, h, s, mn, mx in TILING_CASES:
        img = Image.new('RGB', (w, h))
        tiles, grid = R.dynamic_preprocess(img, min_num=mn, max_num=mx, image_size=s, use_thumbnail=True,
                                           return_grid=True)
        out.append({"width": w, "height": h, "image_size": s, "min_num": mn, "max_num": mx,
                    "grid_cols_rows": [int(grid[0]), int(grid[1])], "num_patches_with_thumbnail": len(tiles)})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    require_node_modules()
    vocab, merges = train_bpe(CORPUS, N_BPE_VOCAB)
    tok_files, added = tokenizer_files(vocab, merges)
    pybpe = PyBPE(vocab, merges, added)
    n_tok = len(vocab) + len(ADDED_TOKENS)
    print(f'tokenizer: {len(vocab)} BPE tokens, {len(merges)} merges, {n_tok} total')

    image_path = os.path.join(OUT, 'image.png')
    make_image(image_path)

    # tokenizer cases (tokenizers.js), cross-checked against the Python BPE
    with tempfile.TemporaryDirectory() as td:
        write_files(td, tok_files)
        enc = run_tokjs(td, [{"op": "encode", "text": t} for t in TOKENIZER_TEXTS])
        print('[tokenizer] self-checks')
        for e in enc:
            py_ids, py_toks = pybpe.encode(e['text'])
            check(py_ids == e['ids'] and py_toks == e['tokens'], f'tokenizers.js == Python BPE for {e["text"]!r}')
        decode_reqs = []
        for e in enc[:9]:
            decode_reqs.append({"op": "decode", "ids": e['ids'], "skip_special_tokens": False})
        decode_reqs += [
            {"op": "decode", "ids": enc[7]['ids'], "skip_special_tokens": True},
            {"op": "decode", "ids": enc[8]['ids'], "skip_special_tokens": True},
            {"op": "decode", "ids": enc[12]['ids'], "skip_special_tokens": True},
            # a lone continuation byte and a split multi-byte char -> U+FFFD
            {"op": "decode", "ids": [vocab[BYTE_ENC[0xE4]], vocab[BYTE_ENC[0xBD]]], "skip_special_tokens": False},
            {"op": "decode", "ids": [vocab['H'], vocab['i'], added['<|im_end|>'], vocab['Ġ']],
             "skip_special_tokens": False},
        ]
        dec = run_tokjs(td, decode_reqs)
        for r in dec:
            check(r['text'] == pybpe.decode(r['ids'], r['skip_special_tokens']),
                  f'decode agrees with Python for {r["ids"][:6]}... skip={r["skip_special_tokens"]}')
    tok_cases = {
        "description": "Qwen2-style byte-level BPE fixture tokenizer (same tokenizer.json in both model dirs); "
                       "ids/tokens from tokenizers.js (@huggingface/tokenizers 0.2.0), cross-checked against an "
                       "independent Python byte-level BPE in make_fixtures.py.",
        "tokenizer": "internvl2_5-qwen2/tokenizer.json",
        "bpe_vocab_size": len(vocab),
        "num_merges": len(merges),
        "total_vocab_size": n_tok,
        "added_tokens": added,
        "encode": [{"text": e['text'], "ids": e['ids'], "tokens": e['tokens']} for e in enc],
        "decode": [{"ids": r['ids'], "skip_special_tokens": r['skip_special_tokens'], "text": r['text']}
                   for r in dec],
    }
    write_json(os.path.join(OUT, 'tokenizer_cases.json'), tok_cases)

    with open(os.path.join(OUT, 'tiling_cases.json'), 'w', encoding='utf-8', newline='\n') as f:
        json.dump({"description": "dynamic_preprocess target grid (cols, rows) and tile count incl. thumbnail, "
                                  "from the README's find_closest_aspect_ratio/dynamic_preprocess logic",
                   "cases": tiling_cases()}, f, indent=2)
        f.write('\n')

    bos, eos = added['<|endoftext|>'], added['<|im_end|>']
    # Variant 1: InternVL2_5-1B-like (InternViT-300M style vision, Qwen2 LM), float32
    cfg1 = chat_config(
        vision_config(32, 2, 4, 64, 56, 14, True, False, 'layer_norm', 1.0, 'float32'),
        qwen2_config(n_tok, bos, eos), 'internvl2_5', 56, -1, 6, 'float32')
    build_variant('internvl2_5-qwen2', cfg1, torch.float32, tok_files, added, pybpe, image_path, seed=1001)

    # Variant 2: InternViT-6B style vision (qk_norm, rms_norm, no qkv bias, select_layer -2,
    # native pos-embed grid 2x2 interpolated to the 4x4 grid of force_image_size=56), Llama LM, bf16,
    # Hermes-2 template (InternVL2-Llama3-76B), padded vocab.
    cfg2 = chat_config(
        vision_config(48, 3, 4, 96, 28, 14, False, True, 'rms_norm', 0.1, 'bfloat16'),
        llama_config(640, bos, eos), 'Hermes-2', 56, -2, 4, 'bfloat16')
    build_variant('internvl2_5-llama-6bvit', cfg2, torch.bfloat16, tok_files, added, pybpe, image_path, seed=2002)

    print(f'fixtures written to {OUT}: {total_size(OUT) / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
