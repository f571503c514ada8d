#!/usr/bin/python3
"""Create the InternVL2.5 test fixtures for GenRecal.Tests (deterministic, seeded).

Run with Debian's python3 (PyTorch 1.13 CPU, numpy, Pillow, python3-regex), from any directory:
    (cd tools/reference/common && npm ci) && /usr/bin/python3 tools/reference/internvl/make_fixtures.py

Writes tests/GenRecal.Tests/Fixtures/internvl/:
    image.png, tokenizer_cases.json,
    internvl2_5-qwen2/{config.json, model.safetensors, tokenizer files, expected.json, expected.safetensors}
    internvl2_5-llama-6bvit/{...same...}
    internvl2_5-internlm2/{config.json, model.safetensors, tokenizer.model, tokenizer_config.json,
                           special_tokens_map.json, added_tokens.json, tokenizer_cases.json, expected.*}
Everything numeric comes from internvl_ref.py.  The Qwen2-style BPE ids come from tokenizers.js
(tools/reference/common/tokenize.mjs) and are cross-checked against an independent Python byte-level BPE; the
InternLM2 variant's ids come from sentencepiece (python3-sentencepiece) through the InternLM2Tokenizer port in
internlm2_tokenizer.py, cross-checked per chunk against plain sentencepiece.
The BPE trainer/encoder, the tokenizer-file building blocks and the fixture scaffolding are shared with
the other references (tools/reference/common/refcommon).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'common'))
import internlm2_tokenizer as ILT  # noqa: E402
import internvl_ref as R  # noqa: E402
from refcommon.bpe import BYTE_ENC, PyBPE, train_bpe  # noqa: E402
from refcommon.fixtures import (Gen, check, draw_random_shapes, fixtures_dir, require_node_modules,  # noqa: E402
                                rounded_margins, run_tokjs, total_size, write_files, write_json)
from refcommon.ops import decoder_layers  # noqa: E402
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


def make_vision_weights(g, cfg):
    """InternViT + mlp1 weights, drawn from g (first in every variant's draw order)."""
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
    return W


def make_weights(cfg, seed):
    g = Gen(seed)
    W = make_vision_weights(g, cfg)
    lc = cfg['llm_config']
    Hd = lc['hidden_size']
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


class JsTokenizer:
    """Token ids for the Qwen2-style byte-level BPE fixtures: tokenizers.js, cross-checked against PyBPE."""
    description = "tokenizers.js"
    generator_tokenizer = "@huggingface/tokenizers 0.2.0 (tokenizers.js)"

    def __init__(self, d, added, pybpe):
        self.d, self.added, self.pybpe = d, added, pybpe

    def id_checks(self):
        img_ctx_id = self.added['<IMG_CONTEXT>']
        js = run_tokjs(self.d, [{"op": "token_to_id", "token": t} for t in ('<IMG_CONTEXT>', '<img>', '</img>')])
        check(js[0]['id'] == img_ctx_id, 'tokenizers.js id of <IMG_CONTEXT> matches')

    def encode_query(self, case, query, eos_tok):
        """-> (ids, tokens, eos_id) as chat() gets them: tokenizer(query), convert_tokens_to_ids(eos)."""
        enc, eos_js = run_tokjs(self.d, [{"op": "encode", "text": query},
                                         {"op": "token_to_id", "token": eos_tok}])
        ids = enc['ids']
        py_ids, _ = self.pybpe.encode(query)
        check(py_ids == ids, f'{case}: tokenizers.js prompt ids == independent Python BPE ids')
        eos_id = eos_js['id']
        check(eos_id == self.added['<|im_end|>'], f'{case}: eos token {eos_tok!r} -> {eos_id}')
        rt = run_tokjs(self.d, [{"op": "decode", "ids": ids, "skip_special_tokens": False}])[0]['text']
        check(rt == query, f'{case}: tokenizers.js decode(prompt ids) == prompt string')
        return ids, enc['tokens'], eos_id

    def generated_fields(self, case, gen, eos_tok):
        dec_full, dec_skip = run_tokjs(self.d, [{"op": "decode", "ids": gen, "skip_special_tokens": False},
                                                {"op": "decode", "ids": gen, "skip_special_tokens": True}])
        check(dec_full['text'] == self.pybpe.decode(gen) and dec_skip['text'] == self.pybpe.decode(gen, True),
              f'{case}: generated-id decode agrees with Python decoder')
        # chat() post-processing: batch_decode(skip_special_tokens=True) -> split(sep.strip())[0].strip()
        response = dec_skip['text'].split(eos_tok)[0].strip()
        return {"generated_text": dec_full['text'], "generated_text_skip_special": dec_skip['text'],
                "chat_response": response}


def build_variant(name, cfg, weights_dtype, tok_files, added, pybpe, image_path, seed):
    d = os.path.join(OUT, name)
    return _build_variant(name, cfg, weights_dtype, tok_files, image_path, make_weights(cfg, seed),
                          JsTokenizer(d, added, pybpe))


def _build_variant(name, cfg, weights_dtype, tok_files, image_path, W, tk, model_checks=None):
    """Write one model folder.  W: float32 weights (stored as weights_dtype); tk: the tokenizer adapter
    (JsTokenizer / InternLM2Tok); model_checks(model, pv): extra self-checks, returns extra expected.json keys."""
    added = tk.added
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    write_files(d, tok_files)
    write_json(os.path.join(d, 'config.json'), cfg)
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

    extra = model_checks(model, pv) if model_checks is not None else {}

    img_ctx_id = added['<IMG_CONTEXT>']
    tk.id_checks()

    cases = {}
    tensors = {'pixel_values': pv.contiguous()}
    for case, question, pixel_values in (('image', IMAGE_QUESTION, pv), ('text', TEXT_QUESTION, None)):
        query, eos_tok, final_q = R.build_chat_query(
            model.template, question, [num_patches] if pixel_values is not None else None,
            model.num_image_token, has_image=pixel_values is not None, system_message=model.system_message)
        ids, prompt_tokens, eos_id = tk.encode_query(case, query, eos_tok)
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
        cases[case] = {
            "question": question,
            "question_after_chat_rewrite": final_q,
            "prompt": query,
            "input_ids": ids,
            "prompt_tokens": prompt_tokens,
            "num_prompt_tokens": len(ids),
            "num_img_context_tokens": n_ctx,
            "first_step_argmax": int(torch.argmax(logits1[-1])),
            "generated_ids": gen,
            **tk.generated_fields(case, gen, eos_tok),
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
                       "tools/reference/internvl/internvl_ref.py (plain PyTorch, float32) and " + tk.description + ".",
        "generator": {
            "script": "tools/reference/internvl/make_fixtures.py",
            "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "python": sys.version.split()[0], "compute_dtype": "float32",
            "weights_stored_dtype": str(weights_dtype).replace('torch.', ''),
            "tokenizer": tk.generator_tokenizer,
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
    expected.update(extra)
    write_json(os.path.join(d, 'expected.json'), expected)
    return expected


# ---------------------------------------------------------------------------
# Variant 3: InternLM2 language model (InternVL2.5-8B / -26B style) with an InternLM2Tokenizer
# ---------------------------------------------------------------------------

IL2_SP_VOCAB = 600     # sentencepiece pieces from the trainer (ids 0..599), then the 6 chat pieces 600..605
IL2_NAME = 'internvl2_5-internlm2'


def internlm2_config(vocab_size):
    """llm_config key names of OpenGVLab/InternVL2-8B / InternVL2_5-8B (internlm/internlm2_5-7b-chat):
    InternLM2Config (configuration_internlm2.py) as serialized there, with tiny sizes.  rope_theta is an
    integer and rope_scaling is {"factor", "type"} as in the real file."""
    return {
        "_name_or_path": "tiny-internlm2",
        "architectures": ["InternLM2ForCausalLM"],
        "attn_implementation": "eager",
        "auto_map": {
            "AutoConfig": "configuration_internlm2.InternLM2Config",
            "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
            "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
        },
        "bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 32768,
        "model_type": "internlm2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pad_token_id": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 2.0, "type": "dynamic"},
        "rope_theta": 1000000,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_bfloat16": True,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def pack_wqkv(q, k, v, n_heads, n_kv, head_dim):
    """Rows of InternLM2's wqkv from Llama-style q/k/v projections (weights [out, in] or biases [out]), written
    out as an explicit loop: for each kv head h, the G = n_heads/n_kv query heads h*G .. h*G+G-1, then key
    head h, then value head h (the inverse of the model's 'b q (h gs d) -> b q h gs d' split)."""
    G = n_heads // n_kv
    rows = []
    for h in range(n_kv):
        for gq in range(G):
            qh = h * G + gq
            rows.append(q[qh * head_dim:(qh + 1) * head_dim])
        rows.append(k[h * head_dim:(h + 1) * head_dim])
        rows.append(v[h * head_dim:(h + 1) * head_dim])
    return torch.cat(rows, dim=0)


def make_internlm2_weights(cfg, seed, with_bias=None):
    g = Gen(seed)
    W = make_vision_weights(g, cfg)
    lc = cfg['llm_config']
    Hd, V, Im = lc['hidden_size'], lc['vocab_size'], lc['intermediate_size']
    nh, nkv = lc['num_attention_heads'], lc['num_key_value_heads']
    hd = Hd // nh
    bias = lc['bias'] if with_bias is None else with_bias
    m = 'language_model.model.'
    W[m + 'tok_embeddings.weight'] = g.n((V, Hd), 1.0)
    for i in range(lc['num_hidden_layers']):
        e = f'{m}layers.{i}.'
        q = g.n((nh * hd, Hd), Hd ** -0.5 * 1.5)
        k = g.n((nkv * hd, Hd), Hd ** -0.5 * 1.5)
        v = g.n((nkv * hd, Hd), Hd ** -0.5)
        W[e + 'attention.wqkv.weight'] = pack_wqkv(q, k, v, nh, nkv, hd)
        if bias:
            W[e + 'attention.wqkv.bias'] = pack_wqkv(g.n((nh * hd,), 0.2), g.n((nkv * hd,), 0.2),
                                                     g.n((nkv * hd,), 0.2), nh, nkv, hd)
        W[e + 'attention.wo.weight'] = g.n((Hd, nh * hd), (nh * hd) ** -0.5)
        if bias:
            W[e + 'attention.wo.bias'] = g.n((Hd,), 0.1)
        W[e + 'feed_forward.w1.weight'] = g.n((Im, Hd), Hd ** -0.5)      # gate
        W[e + 'feed_forward.w3.weight'] = g.n((Im, Hd), Hd ** -0.5)      # up
        W[e + 'feed_forward.w2.weight'] = g.n((Hd, Im), Im ** -0.5)      # down
        W[e + 'attention_norm.weight'] = g.n((Hd,), 0.15, 1.0)
        W[e + 'ffn_norm.weight'] = g.n((Hd,), 0.15, 1.0)
    W[m + 'norm.weight'] = g.n((Hd,), 0.15, 1.0)
    W['language_model.output.weight'] = g.n((V, Hd), Hd ** -0.5 * 3.0)
    return W


def internlm2_tokenizer_files(sp_vocab_size):
    """tokenizer.model (bytes) and the HF files of an InternVL2.5-8B-style InternLM2Tokenizer.
    Returns (model_bytes, json files dict, added_tokens_decoder {id: content})."""
    lines = [ln for ln in CORPUS.split('\n') if ln.strip()]
    model = ILT.build_tokenizer_model(lines, sp_vocab_size)
    n_sp = sp_vocab_size + len(ILT.CHAT_TOKENS)
    decoder = {0: '<unk>', 1: '<s>', 2: '</s>'}
    for i, (_, content) in enumerate(ILT.CHAT_TOKENS):
        decoder[sp_vocab_size + i] = content
    for i, content in enumerate(ILT.INTERNVL_TOKENS):
        decoder[n_sp + i] = content
    chat_specials = ['<|im_start|>', '<|im_end|>', '<|action_start|>', '<|action_end|>', '<|interpreter|>',
                     '<|plugin|>']
    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(i): added_token_decoder(c) for i, c in sorted(decoder.items())},
        "additional_special_tokens": chat_specials,
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "decode_with_prefix_space": False,
        "eos_token": "</s>",
        "model_max_length": 8192,
        "pad_token": "</s>",
        "sp_model_kwargs": None,
        "tokenizer_class": "InternLM2Tokenizer",
        "unk_token": "<unk>",
    }
    special_map = {
        "additional_special_tokens": chat_specials,
        "bos_token": special_token_map_entry("<s>"),
        "eos_token": special_token_map_entry("</s>"),
        "pad_token": special_token_map_entry("</s>"),
        "unk_token": special_token_map_entry("<unk>"),
    }
    # PreTrainedTokenizer.save_pretrained writes only the added tokens with id >= vocab_size (the InternVL ones)
    beyond = {c: i for i, c in decoder.items() if i >= n_sp}
    files = {
        'tokenizer_config.json': tok_cfg,
        'special_tokens_map.json': special_map,
        'added_tokens.json': added_tokens_json(beyond),
    }
    return model, files, decoder


class InternLM2Tok:
    """Token ids for the InternLM2 fixture: the ported InternLM2Tokenizer logic over sentencepiece
    (internlm2_tokenizer.InternLM2TokenizerRef), with cross-checks against plain sentencepiece."""
    description = "sentencepiece 0.1.97 through a port of the slow InternLM2Tokenizer (internlm2_tokenizer.py)"
    generator_tokenizer = "sentencepiece 0.1.97 + InternLM2Tokenizer port (tools/reference/internvl/internlm2_tokenizer.py)"

    def __init__(self, model_bytes, decoder, n_vocab_cfg):
        self.tok = ILT.InternLM2TokenizerRef(model_bytes, decoder, add_bos_token=True, add_eos_token=False)
        self.added = {c: i for i, c in decoder.items()}
        self.n_vocab_cfg = n_vocab_cfg

    def id_checks(self):
        t = self.tok
        check(len(t) == self.n_vocab_cfg, f'len(tokenizer) == llm_config.vocab_size == {len(t)}')
        check(t.bos_token_id == 1 and t.eos_token_id == 2 and t.sp.unk_id() == 0, 'sentencepiece <unk>/<s>/</s> = 0/1/2')
        im_end = self.added['<|im_end|>']
        check(t.sp.id_to_piece(im_end) == '[UNUSED_TOKEN_145]' and t.convert_tokens_to_ids('<|im_end|>') == im_end,
              f'<|im_end|> = {im_end}: in-vocab piece [UNUSED_TOKEN_145] relabelled by added_tokens_decoder')
        check(t.sp.encode('<|im_end|>') != [im_end], 'plain sentencepiece does not produce <|im_end|> (added-token split needed)')
        check(t.convert_tokens_to_ids('<IMG_CONTEXT>') == self.added['<IMG_CONTEXT>'] >= t.vocab_size,
              '<IMG_CONTEXT> is an added token beyond the sentencepiece vocab')

    def _chunk_check(self, case, text, ids):
        """Independent re-derivation: BOS + per-chunk sentencepiece int ids / added ids; and each chunk decodes back."""
        t = self.tok
        alt = [t.bos_token_id]
        for c in re.split('(' + '|'.join(re.escape(x) for x in sorted(self.added, key=len, reverse=True)) + ')', text):
            if not c:
                continue
            if c in self.added:
                alt.append(self.added[c])
            else:
                sp_ids = t.sp.encode(c)
                check(t.sp.decode(sp_ids) == c, f'{case}: sentencepiece decode(encode(chunk)) == chunk for {c[:20]!r}')
                alt.extend(sp_ids)
        check(alt == ids, f'{case}: ids == BOS + per-chunk sentencepiece ids')

    def encode_query(self, case, query, eos_tok):
        t = self.tok
        ids = t.encode(query)
        check(ids[0] == t.bos_token_id == 1, f'{case}: tokenizer(query) starts with <s> = 1 (add_bos_token)')
        self._chunk_check(case, query, ids)
        eos_id = t.convert_tokens_to_ids(eos_tok)
        check(eos_id == self.added['<|im_end|>'], f'{case}: eos token {eos_tok!r} -> {eos_id}')
        return ids, t.convert_ids_to_tokens(ids), eos_id

    def generated_fields(self, case, gen, eos_tok):
        return {"generated_tokens": self.tok.convert_ids_to_tokens(gen)}

    def cases(self, texts):
        out = []
        for text in texts:
            ids = self.tok.encode(text)
            self._chunk_check('tokenizer case', text, ids)
            out.append({"text": text, "ids": ids, "tokens": self.tok.convert_ids_to_tokens(ids),
                        "sentencepiece_chunks": self.tok.sp_chunks(text)})
        return out


def internlm2_layout_checks(model, pv):
    """The wqkv layout is exercised: splitting wqkv with it and running the plain Llama/Qwen2 decoder stack
    (refcommon.ops.decoder_layers, separate q/k/v/o/gate/up/down) gives the InternLM2 logits; wrong splits don't."""
    lm = model.lm
    H, KV, D, L = lm.n_heads, lm.n_kv, lm.head_dim, lm.n_layers
    g = torch.Generator().manual_seed(77)
    x = torch.randn(24, lm.hidden, generator=g)
    ref_logits, _ = lm.forward(x)

    def llama_logits(W, split, with_bias):
        Wl = {}
        for i in range(L):
            src, dst = f'language_model.model.layers.{i}.', f'L.{i}.'
            for name in ('weight',) + (('bias',) if with_bias else ()):
                qw, kw, vw = split(W[src + 'attention.wqkv.' + name])
                Wl[dst + 'self_attn.q_proj.' + name] = qw
                Wl[dst + 'self_attn.k_proj.' + name] = kw
                Wl[dst + 'self_attn.v_proj.' + name] = vw
                Wl[dst + 'self_attn.o_proj.' + name] = W[src + 'attention.wo.' + name]
            Wl[dst + 'mlp.gate_proj.weight'] = W[src + 'feed_forward.w1.weight']
            Wl[dst + 'mlp.up_proj.weight'] = W[src + 'feed_forward.w3.weight']
            Wl[dst + 'mlp.down_proj.weight'] = W[src + 'feed_forward.w2.weight']
            Wl[dst + 'input_layernorm.weight'] = W[src + 'attention_norm.weight']
            Wl[dst + 'post_attention_layernorm.weight'] = W[src + 'ffn_norm.weight']
        cos, sin = lm.rope(torch.arange(x.shape[0]))
        h, _ = decoder_layers(x, cos, sin, None, Wl, 'L.', L, H, KV, D, lm.eps, qkv_bias=with_bias, o_bias=with_bias)
        h = R.rms_norm(h, W['language_model.model.norm.weight'], lm.eps)
        return R.linear(h, W['language_model.output.weight'])

    def right(t):
        return R.internlm2_unpack_wqkv_weight(t, H, KV, D)

    def thirds(t):   # wrong: plain [q; k; v] row blocks
        return t[:H * D], t[H * D:(H + KV) * D], t[(H + KV) * D:]

    def q_transposed(t):   # wrong: grouped, but query head index g*KV + h instead of h*G + g
        q, k, v = right(t)
        G = H // KV
        qq = q.reshape(KV, G, D, *q.shape[1:]).transpose(0, 1).reshape(q.shape)
        return qq, k, v

    # pack (explicit loop, generator) and unpack (reshape, reference) agree
    w0 = model.W['language_model.model.layers.0.attention.wqkv.weight']
    q, k, v = right(w0)
    check(torch.equal(pack_wqkv(q, k, v, H, KV, D), w0), 'pack_wqkv(unpack(wqkv)) == wqkv')
    d_ok = float((llama_logits(model.W, right, False) - ref_logits).abs().max())
    check(d_ok < 1e-5, f'wqkv split as (h, gs, d) + Llama-style attention == InternLM2 logits (max |diff| {d_ok:.1e})')
    d_thirds = float((llama_logits(model.W, thirds, False) - ref_logits).abs().max())
    check(d_thirds > 0.1, f'wrong split [q;k;v] thirds changes the logits (max |diff| {d_thirds:.3f})')
    d_qt = float((llama_logits(model.W, q_transposed, False) - ref_logits).abs().max())
    check(d_qt > 0.1, f'wrong query-head order inside the groups changes the logits (max |diff| {d_qt:.3f})')

    # config.bias = True path (not in the stored checkpoint: InternLM2.5 has bias=false): same equivalence
    gb = torch.Generator().manual_seed(78)
    saved_W, saved_bias = model.lm.W, model.lm.bias
    Wb = dict(model.W)
    for i in range(L):
        e = f'language_model.model.layers.{i}.attention.'
        Wb[e + 'wqkv.bias'] = torch.randn((H + 2 * KV) * D, generator=gb) * 0.3
        Wb[e + 'wo.bias'] = torch.randn(lm.hidden, generator=gb) * 0.1
    model.lm.W, model.lm.bias = Wb, True
    ref_b, _ = model.lm.forward(x)
    model.lm.W, model.lm.bias = saved_W, saved_bias
    d_b = float((llama_logits(Wb, right, True) - ref_b).abs().max())
    check(d_b < 1e-5 and float((ref_b - ref_logits).abs().max()) > 1e-3,
          f'with config.bias: wqkv.bias split the same way (max |diff| {d_b:.1e})')
    check(lm.dynamic_guard and lm.max_pos == 32768, 'rope_scaling dynamic: fixture stays below max_position_embeddings')
    return {"llm_self_checks": {
        "wqkv_layout_vs_llama_attention_max_abs_diff": d_ok,
        "wrong_split_qkv_thirds_max_abs_diff": d_thirds,
        "wrong_query_head_order_max_abs_diff": d_qt,
        "with_bias_layout_vs_llama_attention_max_abs_diff": d_b,
    }}


IL2_TOKENIZER_TEXTS = [
    "What is in the picture?",
    "  leading spaces\n\nand\ttabs  ",
    "你是书生·万象，英文名是InternVL。",
    "emoji 😀👍🏽 and ✨",
    "I have 123 apples",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<img><IMG_CONTEXT><IMG_CONTEXT></img>",
    "<ref>the cat</ref><box>[[10, 20, 30, 40]]</box>",
    "[UNUSED_TOKEN_146]user\n",
    "<s>text</s>",
    "",
]


def build_internlm2_variant(image_path, seed=3003):
    model_bytes, files, decoder = internlm2_tokenizer_files(IL2_SP_VOCAB)
    vocab_size = max(decoder) + 1
    cfg = chat_config(
        vision_config(32, 2, 4, 64, 56, 14, True, False, 'layer_norm', 1.0, 'bfloat16'),
        internlm2_config(vocab_size), 'internvl2_5', 56, -1, 6, 'bfloat16')
    tk = InternLM2Tok(model_bytes, decoder, vocab_size)
    d = os.path.join(OUT, IL2_NAME)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'tokenizer.model'), 'wb') as f:
        f.write(model_bytes)
    print(f'[{IL2_NAME}] tokenizer self-checks')
    tok_cases = tk.cases(IL2_TOKENIZER_TEXTS)
    files['tokenizer_cases.json'] = {
        "description": "InternLM2Tokenizer(tokenizer.model)(text).input_ids for this folder's tokenizer: BOS, then the "
                       "text split on added tokens, each other chunk encoded by sentencepiece separately "
                       "(tools/reference/internvl/internlm2_tokenizer.py).",
        "sentencepiece_normalizer": {k: ILT.TRAINER_OPTIONS[k] for k in
                                     ('add_dummy_prefix', 'remove_extra_whitespaces', 'normalization_rule_name')},
        "sentencepiece_vocab_size": tk.tok.vocab_size,
        "total_vocab_size": len(tk.tok),
        "added_tokens": {c: i for i, c in sorted(decoder.items())},
        "encode": tok_cases,
    }
    W = make_internlm2_weights(cfg, seed)
    extra_tok = {
        "bos_token_id": 1,
        "tokenizer_notes": {
            "class": "InternLM2Tokenizer (slow, sentencepiece); add_bos_token true -> input_ids start with <s> = 1",
            "sentencepiece": "BPE, byte_fallback, <unk>/<s>/</s> = 0/1/2; add_dummy_prefix false, "
                             "remove_extra_whitespaces false, identity normalization (read them from tokenizer.model)",
            "in_vocab_added_tokens": "ids %d..%d are the pieces [UNUSED_TOKEN_141..146]; added_tokens_decoder relabels "
                                     "them <|plugin|> <|interpreter|> <|action_end|> <|action_start|> <|im_end|> "
                                     "<|im_start|> (as internlm2_5-7b-chat)" % (IL2_SP_VOCAB, IL2_SP_VOCAB + 5),
            "added_tokens_beyond_vocab": "<img> .. </box> = %d..%d (added_tokens.json)" % (
                IL2_SP_VOCAB + 6, vocab_size - 1),
            "split": "text is split on every added token first; sentencepiece encodes each remaining chunk alone",
            "generated_tokens": "convert_ids_to_tokens(generated_ids); decoded text is not given",
        },
        "llm_notes": {
            "wqkv_layout": "wqkv.weight rows = num_key_value_heads groups of (G + 2) * head_dim, G = heads / kv_heads; "
                           "group h = query heads h*G .. h*G+G-1, then key head h, then value head h "
                           "('b q (h gs d) -> b q h gs d'; query head index h*G + g, so head j uses kv head j // G)",
            "rope": "rope_scaling dynamic (factor 2.0) equals plain RoPE (theta 1e6) while seq_len <= "
                    "max_position_embeddings (32768); the fixture stays far below",
            "attention": "scores / sqrt(head_dim), additive causal mask, float32 softmax; wo; no biases (bias false)",
            "mlp": "w2(silu(w1 x) * w3 x)",
            "norms": "attention_norm, ffn_norm, model.norm: RMSNorm eps 1e-5 (float32 variance)",
            "compute": "float32 throughout (bf16 weights upcast); the real model run with torch_dtype=float32",
        },
    }

    def checks(model, pv):
        out = internlm2_layout_checks(model, pv)
        out.update(extra_tok)
        return out

    return _build_variant(IL2_NAME, cfg, torch.bfloat16, files, image_path, W, tk, model_checks=checks)


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

    # Variant 3: InternVL2.5-8B style LM: InternLM2 (packed wqkv, GQA 4 heads / 2 kv heads), InternLM2Tokenizer
    # (sentencepiece BPE), vision as variant 1, bf16, template internvl2_5.
    build_internlm2_variant(image_path, seed=3003)

    print(f'fixtures written to {OUT}: {total_size(OUT) / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
