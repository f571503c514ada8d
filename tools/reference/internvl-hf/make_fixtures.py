#!/usr/bin/python3
"""Create the InternVL "-hf" (InternVLForConditionalGeneration) test fixtures for GenRecal.Tests.

Deterministic (seeded).  Run with Debian's python3 (PyTorch 1.13 CPU, numpy, Pillow, python3-regex), from any
directory:
    (cd tools/reference/common && npm ci) && /usr/bin/python3 tools/reference/internvl-hf/make_fixtures.py

Inputs (read only): the sibling fixtures of tools/reference/internvl/ --
    tests/GenRecal.Tests/Fixtures/internvl/image.png                       (the test image, used by relative path)
    tests/GenRecal.Tests/Fixtures/internvl/internvl2_5-qwen2/{tokenizer.json,vocab.json,merges.txt}
        (the small Qwen2-style BPE; copied and extended with "<video>")
    tests/GenRecal.Tests/Fixtures/internvl/internvl2_5-qwen2/{config.json,model.safetensors,expected.*}
        (original-format checkpoint for the conversion cross-check)
Writes tests/GenRecal.Tests/Fixtures/internvl-hf/internvl3-hf/:
    config.json generation_config.json model.safetensors
    tokenizer.json tokenizer_config.json special_tokens_map.json added_tokens.json vocab.json merges.txt
    preprocessor_config.json processor_config.json chat_template.jinja
    expected.json expected.safetensors
Every number comes from internvl_hf_ref.py; every token id from tokenizers.js and every rendered chat
template from @huggingface/jinja (tools/reference/common/tokenize.mjs), each cross-checked in Python.
The Python BPE, the tokenizer-file building blocks and the fixture scaffolding are shared with the other
references (tools/reference/common/refcommon).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import internvl_hf_ref as R  # noqa: E402
from refcommon.bpe import PyBPE  # noqa: E402
from refcommon.fixtures import (Gen, check, fixtures_dir, require_node_modules, rounded_margins,  # noqa: E402
                                run_tokjs as run_js, total_size, write_files, write_json)
from refcommon.tokenizer_files import (added_token_decoder, added_token_entry, added_tokens_json,  # noqa: E402
                                       special_token_map_entry)

OUT = fixtures_dir("internvl-hf")
SIB = fixtures_dir("internvl")
SIB_MODEL = os.path.join(SIB, "internvl2_5-qwen2")
IMAGE_PATH = os.path.join(SIB, "image.png")
NAME = "internvl3-hf"
IMAGE_REL = "../../internvl/image.png"  # from Fixtures/internvl-hf/internvl3-hf/

torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions

# ---------------------------------------------------------------------------
# Tokenizer: the sibling's Qwen2-style BPE + InternVL-hf special tokens
# ---------------------------------------------------------------------------

# Added tokens in the order of OpenGVLab/InternVL3-1B-hf (Qwen2 specials, InternVL's 9 tokens, then "<video>"
# which the hub tokenizer got with "Update processor (#2)": its added_tokens.json grew by exactly the 21
# bytes of one '  "<video>": 151674,\n' entry, i.e. an id == text_config.vocab_size, outside the embedding).
ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
                "<video>"]
N_MODEL_VOCAB = 612  # == sibling vocab_size; "<video>" (612) is past the embedding, like 151674 in the hub


def tokenizer_files():
    with open(os.path.join(SIB_MODEL, "tokenizer.json"), encoding="utf-8") as f:
        sib_tok = json.load(f)
    with open(os.path.join(SIB_MODEL, "merges.txt"), encoding="utf-8") as f:
        merges_txt = f.read()
    vocab = sib_tok["model"]["vocab"]
    merges = [tuple(m.split(" ")) for m in sib_tok["model"]["merges"]]
    n = len(vocab)
    sib_added = [a["content"] for a in sib_tok["added_tokens"]]
    assert sib_added == ADDED_TOKENS[:-1] and [a["id"] for a in sib_tok["added_tokens"]] == list(range(n, n + 12))
    added = {c: n + i for i, c in enumerate(ADDED_TOKENS)}
    tok = json.loads(json.dumps(sib_tok))
    tok["added_tokens"] = [added_token_entry(added[c], c) for c in ADDED_TOKENS]

    # additional_special_tokens: Qwen2.5-VL's list (its specials except <|endoftext|>) followed by the nine
    # tokens write_tokenizer() adds; "<video>" is only an extra_special_tokens attribute.
    additional = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>",
                  "</ref>", "<box>", "</box>"]
    extra = {"context_image_token": "<IMG_CONTEXT>", "end_image_token": "</img>", "start_image_token": "<img>",
             "video_token": "<video>"}
    # tokenizer_config.json in the schema PreTrainedTokenizerFast.save_pretrained writes (4.52, sort_keys):
    # extra_special_tokens are both a dict and top-level attributes; InternVLProcessor reads
    # tokenizer.start_image_token / end_image_token / context_image_token / video_token from them.
    tok_cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(added[c]): added_token_decoder(c) for c in ADDED_TOKENS},
        "additional_special_tokens": additional,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "context_image_token": "<IMG_CONTEXT>",
        "end_image_token": "</img>",
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "extra_special_tokens": extra,
        "model_max_length": 8192,
        "pad_token": "<|endoftext|>",
        "processor_class": "InternVLProcessor",
        "return_token_type_ids": False,
        "split_special_tokens": False,
        "start_image_token": "<img>",
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
        "video_token": "<video>",
    }
    special_map = {
        "additional_special_tokens": additional,
        "context_image_token": "<IMG_CONTEXT>",
        "end_image_token": "</img>",
        "eos_token": special_token_map_entry("<|im_end|>"),
        "pad_token": special_token_map_entry("<|endoftext|>"),
        "start_image_token": "<img>",
        "video_token": "<video>",
    }
    files = {
        "tokenizer.json": tok,
        "tokenizer_config.json": tok_cfg,
        "special_tokens_map.json": special_map,
        "added_tokens.json": added_tokens_json(added),
        "vocab.json": vocab,
        "merges.txt": merges_txt,
    }
    return files, vocab, merges, added


# tokenizer_config.json, special_tokens_map.json and added_tokens.json are written with sort_keys, as
# save_pretrained does
SORTED_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


# ---------------------------------------------------------------------------
# Configs -- key sets mirror OpenGVLab/InternVL3-1B-hf (transformers 4.52.0.dev0 serialization)
# ---------------------------------------------------------------------------

IMAGE_SIZE, PATCH = 56, 14
IMAGE_SEQ_LENGTH = (IMAGE_SIZE // PATCH) ** 2 // 4  # (S/p)^2 * downsample_ratio^2 = 4


def model_config(added):
    return {
        "architectures": ["InternVLForConditionalGeneration"],
        "downsample_ratio": 0.5,
        "image_seq_length": IMAGE_SEQ_LENGTH,
        "image_token_id": added["<IMG_CONTEXT>"],
        "model_type": "internvl",
        "projector_hidden_act": "gelu",
        "text_config": {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": added["<|endoftext|>"],
            "eos_token_id": added["<|im_end|>"],
            "hidden_act": "silu",
            "hidden_size": 64,
            "initializer_range": 0.02,
            "intermediate_size": 128,
            "max_position_embeddings": 32768,
            "max_window_layers": 70,
            "model_type": "qwen2",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"},
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "torch_dtype": "float32",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": N_MODEL_VOCAB,
        },
        "torch_dtype": "float32",
        "transformers_version": "4.52.0.dev0",
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "attention_bias": True,
            "attention_dropout": 0.0,
            "dropout": 0.0,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "hidden_size": 32,
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "initializer_factor": 0.1,
            "initializer_range": 1e-10,
            "intermediate_size": 64,
            "layer_norm_eps": 1e-06,
            "layer_scale_init_value": 0.1,
            "model_type": "internvl_vision",
            "norm_type": "layer_norm",
            "num_attention_heads": 4,
            "num_channels": 3,
            "num_hidden_layers": 2,
            "patch_size": [PATCH, PATCH],
            "projection_dropout": 0.0,
            "torch_dtype": "float32",
            "use_absolute_position_embeddings": True,
            "use_mask_token": False,
            "use_mean_pooling": True,
            "use_qk_norm": False,
        },
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
    }


def generation_config(added):
    return {"_from_model_config": True, "bos_token_id": added["<|endoftext|>"],
            "eos_token_id": added["<|im_end|>"], "transformers_version": "4.52.0.dev0"}


# Exactly the key set of the hub's preprocessor_config.json (GotOcr2ImageProcessorFast as serialized by
# 4.52, 666 bytes with size 448) -- only "size" differs.  NOTE "crop_to_patches": false here; the
# InternVLProcessor forces crop_to_patches=True through InternVLProcessorKwargs._defaults.
PREPROCESSOR_CONFIG = {
    "crop_size": None,
    "crop_to_patches": False,
    "data_format": "channels_first",
    "default_to_square": True,
    "device": None,
    "do_center_crop": None,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "GotOcr2ImageProcessorFast",
    "image_std": [0.229, 0.224, 0.225],
    "input_data_format": None,
    "max_patches": 12,
    "min_patches": 1,
    "processor_class": "InternVLProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "return_tensors": None,
    "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
}
PROCESSOR_CONFIG = {"image_seq_length": IMAGE_SEQ_LENGTH, "processor_class": "InternVLProcessor"}
PROCESSOR_IMAGES_KWARGS_DEFAULTS = {"crop_to_patches": True}  # InternVLProcessorKwargs._defaults

# ---------------------------------------------------------------------------
# Weights (random, seeded, -hf key names)
# ---------------------------------------------------------------------------


def make_weights(cfg, seed):
    g = Gen(seed)
    W = {}
    vc, tc = cfg["vision_config"], cfg["text_config"]
    C, p, L, I = vc["hidden_size"], vc["patch_size"][0], vc["num_hidden_layers"], vc["intermediate_size"]
    grid = vc["image_size"][0] // p
    v = "model.vision_tower."
    W[v + "embeddings.cls_token"] = g.n((1, 1, C), 0.5)
    W[v + "embeddings.patch_embeddings.projection.weight"] = g.n((C, 3, p, p), (3 * p * p) ** -0.5 * 1.5)
    W[v + "embeddings.patch_embeddings.projection.bias"] = g.n((C,), 0.1)
    W[v + "embeddings.position_embeddings"] = g.n((1, 1 + grid * grid, C), 0.5)
    for i in range(L):
        e = f"{v}encoder.layer.{i}."
        for nm, std in (("q_proj", 1.5), ("k_proj", 1.5), ("v_proj", 1.0)):
            W[e + f"attention.{nm}.weight"] = g.n((C, C), C ** -0.5 * std)
            W[e + f"attention.{nm}.bias"] = g.n((C,), 0.1)
        W[e + "attention.projection_layer.weight"] = g.n((C, C), C ** -0.5)
        W[e + "attention.projection_layer.bias"] = g.n((C,), 0.1)
        W[e + "mlp.fc1.weight"] = g.n((I, C), C ** -0.5)
        W[e + "mlp.fc1.bias"] = g.n((I,), 0.1)
        W[e + "mlp.fc2.weight"] = g.n((C, I), I ** -0.5)
        W[e + "mlp.fc2.bias"] = g.n((C,), 0.1)
        for nm in ("layernorm_before", "layernorm_after"):
            W[e + nm + ".weight"] = g.n((C,), 0.15, 1.0)
            W[e + nm + ".bias"] = g.n((C,), 0.1)
        W[e + "lambda_1"] = g.u((C,), 0.3, 1.2)  # layer scales: per-channel, clearly not ones / 0.1
        W[e + "lambda_2"] = g.u((C,), 0.3, 1.2)
    Cp = C * 4
    Hd = tc["hidden_size"]
    m = "model.multi_modal_projector."
    W[m + "layer_norm.weight"] = g.n((Cp,), 0.15, 1.0)
    W[m + "layer_norm.bias"] = g.n((Cp,), 0.1)
    W[m + "linear_1.weight"] = g.n((Hd, Cp), Cp ** -0.5 * 1.5)
    W[m + "linear_1.bias"] = g.n((Hd,), 0.1)
    W[m + "linear_2.weight"] = g.n((Hd, Hd), Hd ** -0.5)
    W[m + "linear_2.bias"] = g.n((Hd,), 0.1)
    V, nh, nkv, Im = tc["vocab_size"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["intermediate_size"]
    hd = Hd // nh
    t = "model.language_model."
    W[t + "embed_tokens.weight"] = g.n((V, Hd), 1.0)
    for i in range(tc["num_hidden_layers"]):
        e = f"{t}layers.{i}."
        W[e + "self_attn.q_proj.weight"] = g.n((nh * hd, Hd), Hd ** -0.5 * 1.5)
        W[e + "self_attn.k_proj.weight"] = g.n((nkv * hd, Hd), Hd ** -0.5 * 1.5)
        W[e + "self_attn.v_proj.weight"] = g.n((nkv * hd, Hd), Hd ** -0.5)
        W[e + "self_attn.q_proj.bias"] = g.n((nh * hd,), 0.2)
        W[e + "self_attn.k_proj.bias"] = g.n((nkv * hd,), 0.2)
        W[e + "self_attn.v_proj.bias"] = g.n((nkv * hd,), 0.2)
        W[e + "self_attn.o_proj.weight"] = g.n((Hd, nh * hd), (nh * hd) ** -0.5)
        W[e + "mlp.gate_proj.weight"] = g.n((Im, Hd), Hd ** -0.5)
        W[e + "mlp.up_proj.weight"] = g.n((Im, Hd), Hd ** -0.5)
        W[e + "mlp.down_proj.weight"] = g.n((Hd, Im), Im ** -0.5)
        W[e + "input_layernorm.weight"] = g.n((Hd,), 0.15, 1.0)
        W[e + "post_attention_layernorm.weight"] = g.n((Hd,), 0.15, 1.0)
    W[t + "norm.weight"] = g.n((Hd,), 0.15, 1.0)
    W["lm_head.weight"] = g.n((V, Hd), Hd ** -0.5 * 3.0)  # untied (Qwen2Config.tie_word_embeddings=False)
    return W


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

QUESTION = "What is in the picture?"
TEXT_QUESTION = "Hello, who are you? Please answer in one sentence."
SYSTEM_TEXT = "You are a helpful assistant."
IMAGE_MESSAGES = [{"role": "user", "content": [{"type": "image", "path": IMAGE_REL},
                                                {"type": "text", "text": QUESTION}]}]
TEXT_MESSAGES = [{"role": "system", "content": [{"type": "text", "text": SYSTEM_TEXT}]},
                 {"role": "user", "content": [{"type": "text", "text": TEXT_QUESTION}]}]
MAX_NEW_TOKENS = 8


def run_case(model, tok_dir, pybpe, added, messages, image, proc, image_seq_length):
    """InternVLProcessor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True) + generate."""
    js_render = run_js(tok_dir, [{"op": "apply_chat_template", "template": R.CHAT_TEMPLATE, "messages": messages,
                                  "add_generation_prompt": True,
                                  "kwargs": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}}])[0]["text"]
    py_render = R.render_chat_template_py(messages, True)
    check(js_render == py_render, "@huggingface/jinja rendering == hand translation of the template")
    pv, num_patches, grid = None, [], None
    if image is not None:
        pr = proc.preprocess(image, **PROCESSOR_IMAGES_KWARGS_DEFAULTS, path="pil")
        pv, num_patches, grid = pr["pixel_values"], [pr["num_patches"]], pr["grid"]
    prompt, n_img = R.insert_media_placeholders(js_render, num_patches, image_seq_length)
    check(n_img == (1 if image is not None else 0), f"{n_img} image placeholder(s) consumed")
    enc, = run_js(tok_dir, [{"op": "encode", "text": prompt}])
    ids = enc["ids"]
    py_ids, py_toks = pybpe.encode(prompt)
    check(py_ids == ids and py_toks == enc["tokens"], "tokenizers.js prompt ids == independent Python BPE")
    rt, = run_js(tok_dir, [{"op": "decode", "ids": ids, "skip_special_tokens": False}])
    check(rt["text"] == prompt, "tokenizers.js decode(prompt ids) == prompt")
    input_ids = torch.tensor(ids, dtype=torch.long)
    n_ctx = int((input_ids == model.image_token_id).sum())
    if image is not None:
        check(n_ctx == image_seq_length * num_patches[0], f"{n_ctx} image tokens == image_seq_length * num_patches")
    eos = added["<|im_end|>"]
    l1 = model.prompt_logits(input_ids, pv)
    l2 = model.prompt_logits(input_ids, pv)
    check(torch.equal(l1, l2), "prompt logits bit-identical across two runs")
    gen, steps = model.greedy_generate(input_ids, pv, MAX_NEW_TOKENS, eos, use_cache=True)
    gen2, steps2 = model.greedy_generate(input_ids, pv, MAX_NEW_TOKENS, eos, use_cache=False)
    check(gen == gen2, f"KV-cache greedy == full-recompute greedy: {gen}")
    kv = float((steps - steps2).abs().max())
    check(kv < 1e-4, f"KV-cache vs recompute step logits max |diff| = {kv:.2e}")
    check(torch.equal(steps[0], l1[-1]), "first step logits == last prompt position logits")
    check(len(set(gen)) > 1, "greedy tokens vary")
    d_full, d_skip = run_js(tok_dir, [{"op": "decode", "ids": gen, "skip_special_tokens": False},
                                      {"op": "decode", "ids": gen, "skip_special_tokens": True}])
    check(d_full["text"] == pybpe.decode(gen) and d_skip["text"] == pybpe.decode(gen, True),
          "decode of generated ids agrees with Python decoder")
    return {
        "messages": messages, "rendered_chat_template": js_render, "prompt": prompt, "input_ids": ids,
        "prompt_tokens": enc["tokens"], "num_prompt_tokens": len(ids), "num_image_tokens": n_ctx,
        "num_patches": num_patches, "first_step_argmax": int(torch.argmax(l1[-1])), "generated_ids": gen,
        "generated_text": d_full["text"], "generated_text_skip_special": d_skip["text"],
        "stopped_on_eos": bool(gen and gen[-1] == eos), "kv_cache_vs_recompute_max_abs_diff": kv,
        "greedy_top1_top2_margins": rounded_margins(steps),
    }, {"pixel_values": pv, "input_ids": input_ids, "prompt_logits": l1, "step_logits": steps, "grid": grid}


# ---------------------------------------------------------------------------
# Conversion cross-check against the sibling (original-format) fixture
# ---------------------------------------------------------------------------

def conversion_cross_check(tok_dir, pybpe, added):
    print("[conversion cross-check] original internvl2_5-qwen2 -> -hf layout")
    with open(os.path.join(SIB_MODEL, "config.json"), encoding="utf-8") as f:
        ocfg = json.load(f)
    osd, _ = R.load_safetensors(os.path.join(SIB_MODEL, "model.safetensors"))
    sib_exp_t, _ = R.load_safetensors(os.path.join(SIB_MODEL, "expected.safetensors"))
    with open(os.path.join(SIB_MODEL, "expected.json"), encoding="utf-8") as f:
        sib_exp = json.load(f)
    C = ocfg["vision_config"]["hidden_size"]
    new_sd = R.convert_original_state_dict(osd, C)
    mapping = R.convert_old_keys_to_new_keys(list(osd.keys()))
    # the legacy (pre-4.52) conversion + InternVLForConditionalGeneration._checkpoint_conversion_mapping
    # must land on the same names
    legacy_vision = [(r"vision_model", r"vision_tower")] + R.KEY_MAPPING_VISION[1:]
    import re
    agree = True
    for k, nk in mapping.items():
        lk = k
        if k.startswith("vision_model"):
            for pat, rep in legacy_vision:
                lk = re.sub(pat, rep, lk)
        elif k.startswith("mlp1"):
            for pat, rep in R.KEY_MAPPING_MULTI:
                lk = re.sub(pat, rep.replace("model.", "", 1), lk)
        for pat, rep in R.LEGACY_HF_KEY_MAPPING:
            lk = re.sub(pat, rep, lk)
        agree &= (lk == nk)
    check(agree, "old conversion script + _checkpoint_conversion_mapping == new conversion script key names")
    hf_cfg = R.convert_original_config(ocfg, image_token_id=added["<IMG_CONTEXT>"])
    model = R.InternVLHFRef(config=hf_cfg, weights=new_sd)
    # every converted tensor is consumed by the -hf port (no leftovers, nothing missing)
    assert ocfg["llm_config"]["vocab_size"] == N_MODEL_VOCAB
    fresh = make_weights(R.resolve_config(model_config(added)), 0)
    check(set(fresh) == set(new_sd), f"converted key set == -hf key set ({len(new_sd)} tensors)")
    check(all(fresh[k].shape == new_sd[k].shape for k in fresh), "converted shapes == -hf shapes")
    res = {"converted_tensors": len(new_sd),
           "key_mapping_original_to_hf": {k: (mapping[k].replace("attention.qkv", "attention.{q,k,v}_proj")
                                              if "attn.qkv" in k else mapping[k]) for k in sorted(mapping)}}

    # (a) same pixel_values and same ids as the sibling -> model equivalence
    pv = sib_exp_t["pixel_values"]
    ids_img = torch.tensor(sib_exp["cases"]["image"]["input_ids"])
    ids_txt = torch.tensor(sib_exp["cases"]["text"]["input_ids"])
    feats, inter = model.get_image_features(pv, return_intermediates=True)
    d_vis = float((inter["vision_selected_hidden"] - sib_exp_t["image.vision_selected_hidden"]).abs().max())
    d_emb = float((inter["vision_embeddings"] - sib_exp_t["image.vision_embeddings"]).abs().max())
    d_ps = float((inter["pixel_shuffled"] - sib_exp_t["image.pixel_shuffled"]).abs().max())
    d_proj = float((feats - sib_exp_t["image.vit_embeds"]).abs().max())
    li = model.prompt_logits(ids_img, pv)
    d_logits = float((li - sib_exp_t["image.prompt_logits"]).abs().max())
    gen_i, st_i = model.greedy_generate(ids_img, pv, MAX_NEW_TOKENS, sib_exp["eos_token_id"])
    gen_t, st_t = model.greedy_generate(ids_txt, None, MAX_NEW_TOKENS, sib_exp["eos_token_id"])
    d_steps_i = float((st_i - sib_exp_t["image.generated_step_logits"]).abs().max())
    d_steps_t = float((st_t - sib_exp_t["text.generated_step_logits"]).abs().max())
    print(f"  vision embeddings {d_emb:.2e}, last hidden {d_vis:.2e}, pixel-shuffled {d_ps:.2e}, "
          f"projector {d_proj:.2e}, prompt logits {d_logits:.2e}, step logits img {d_steps_i:.2e} txt {d_steps_t:.2e}")
    check(d_emb == 0.0, "vision embeddings bit-identical (pos-embed: bicubic identity vs skipped interpolation)")
    check(max(d_vis, d_ps, d_proj, d_logits, d_steps_i, d_steps_t) < 1e-4,
          "converted checkpoint reproduces the sibling's expected tensors within 1e-4")
    check(gen_i == sib_exp["cases"]["image"]["generated_ids"] and gen_t == sib_exp["cases"]["text"]["generated_ids"],
          f"greedy ids equal the sibling's: image {gen_i}, text {gen_t}")

    # (b) the full -hf processor path (GotOcr2 tiling + chat template with the original system message)
    proc = R.GotOcr2ImageProcessorRef({**PREPROCESSOR_CONFIG, "max_patches": ocfg["max_dynamic_patch"]})
    image = Image.open(IMAGE_PATH)
    pr = proc.preprocess(image, **PROCESSOR_IMAGES_KWARGS_DEFAULTS, path="pil")
    pv_equal = torch.equal(pr["pixel_values"], pv)
    pv_diff = float((pr["pixel_values"] - pv).abs().max())
    check(pr["grid"] == tuple(sib_exp["preprocess"]["target_grid_cols_rows"]),
          f"GotOcr2 get_optimal_tiled_canvas grid {pr['grid']} == InternVL dynamic_preprocess grid")
    check(pv_diff < 1e-6, f"GotOcr2ImageProcessor (slow, PIL) pixel_values vs sibling load_image: "
                          f"bit-identical={pv_equal}, max |diff| {pv_diff:.2e}")
    sysmsg = sib_exp["system_message"]
    msgs_img = [{"role": "system", "content": [{"type": "text", "text": sysmsg}]},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    msgs_txt = [{"role": "system", "content": [{"type": "text", "text": sysmsg}]},
                {"role": "user", "content": [{"type": "text", "text": TEXT_QUESTION}]}]
    r_img, r_txt = run_js(tok_dir, [
        {"op": "apply_chat_template", "template": R.CHAT_TEMPLATE, "messages": msgs_img, "add_generation_prompt": True},
        {"op": "apply_chat_template", "template": R.CHAT_TEMPLATE, "messages": msgs_txt, "add_generation_prompt": True}])
    p_img, _ = R.insert_media_placeholders(r_img["text"], [pr["num_patches"]], 4)
    check(p_img == sib_exp["cases"]["image"]["prompt"] and r_txt["text"] == sib_exp["cases"]["text"]["prompt"],
          "-hf chat template + processor expansion with the internvl2_5 system message == sibling prompt strings")
    e_img, e_txt = run_js(tok_dir, [{"op": "encode", "text": p_img}, {"op": "encode", "text": r_txt["text"]}])
    check(e_img["ids"] == sib_exp["cases"]["image"]["input_ids"] and
          e_txt["ids"] == sib_exp["cases"]["text"]["input_ids"], "-hf tokenizer ids == sibling ids")
    li2 = model.prompt_logits(torch.tensor(e_img["ids"]), pr["pixel_values"])
    d_full = float((li2 - sib_exp_t["image.prompt_logits"]).abs().max())
    # (c) the default -hf prompt (no system message) differs from the original chat() prompt
    r_nosys, = run_js(tok_dir, [{"op": "apply_chat_template", "template": R.CHAT_TEMPLATE,
                                 "messages": [msgs_img[1]], "add_generation_prompt": True}])
    p_nosys, _ = R.insert_media_placeholders(r_nosys["text"], [pr["num_patches"]], 4)
    e_nosys, = run_js(tok_dir, [{"op": "encode", "text": p_nosys}])
    gen_nosys, _ = model.greedy_generate(torch.tensor(e_nosys["ids"]), pr["pixel_values"], MAX_NEW_TOKENS,
                                         sib_exp["eos_token_id"])
    res.update({
        "source": "tests/GenRecal.Tests/Fixtures/internvl/internvl2_5-qwen2 (original InternVLChatModel layout)",
        "method": "convert_internvl_weights_to_hf.py key mapping + attn.qkv split, get_internvl_config renames; "
                  "then this -hf port run on (a) the sibling's own pixel_values/input_ids and (b) the -hf processor "
                  "path with the internvl2_5 system message passed as a system turn",
        "max_abs_diff": {"vision_embeddings": d_emb, "vision_last_hidden": d_vis, "pixel_shuffled": d_ps,
                         "projector_output": d_proj, "image_prompt_logits": d_logits,
                         "image_step_logits": d_steps_i, "text_step_logits": d_steps_t,
                         "image_prompt_logits_via_hf_processor": d_full},
        "greedy_ids_equal": True,
        "pixel_values_bit_identical": pv_equal,
        "pixel_values_max_abs_diff": pv_diff,
        "prompt_strings_equal_with_system_turn": True,
        "without_system_turn": {"num_prompt_tokens": len(e_nosys["ids"]),
                                "sibling_num_prompt_tokens": sib_exp["cases"]["image"]["num_prompt_tokens"],
                                "generated_ids": gen_nosys,
                                "sibling_generated_ids": sib_exp["cases"]["image"]["generated_ids"]},
        "why_not_bit_identical": "q/k/v are three matmuls instead of one fused qkv matmul, the attention "
                                 "scale multiplies q@k^T instead of q, so float32 rounding differs slightly",
    })
    return res


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

TILING_CASES = [  # (width, height, tile, min_patches, max_patches) -- the sibling's list plus a few ties
    (150, 90, 56, 1, 6), (150, 90, 56, 1, 4), (150, 90, 56, 1, 12), (150, 90, 448, 1, 12),
    (448, 448, 448, 1, 12), (1000, 1000, 448, 1, 12), (1000, 1000, 448, 1, 6), (896, 896, 448, 1, 12),
    (1000, 500, 448, 1, 12), (500, 1000, 448, 1, 12), (800, 600, 448, 1, 12), (1920, 1080, 448, 1, 12),
    (30, 10, 448, 1, 12), (2000, 100, 448, 1, 12), (100, 2000, 448, 1, 6), (640, 480, 448, 2, 6),
    (300, 200, 448, 1, 1), (600, 500, 448, 1, 12), (1300, 1200, 448, 1, 12),
]


def tiling_cases():
    """GotOcr2 get_optimal_tiled_canvas (cols, rows) + patch count incl. thumbnail; where the sibling's
    tiling_cases.json (InternVL README dynamic_preprocess) has the same case, the grids must agree."""
    with open(os.path.join(SIB, "tiling_cases.json"), encoding="utf-8") as f:
        sib = {(c["width"], c["height"], c["image_size"], c["min_num"], c["max_num"]): c for c in json.load(f)["cases"]}
    out, agree = [], 0
    for w, h, s, mn, mx in TILING_CASES:
        cols, rows = R.get_optimal_tiled_canvas((h, w), (s, s), mn, mx)
        n = cols * rows + (1 if cols * rows > 1 else 0)
        if mx <= 1:  # preprocess: crop only when crop_to_patches and max_patches > 1
            cols, rows, n = 1, 1, 1
        out.append({"width": w, "height": h, "tile": s, "min_patches": mn, "max_patches": mx,
                    "grid_cols_rows": [cols, rows], "num_patches": n})
        k = (w, h, s, mn, mx)
        if k in sib:
            check(sib[k]["grid_cols_rows"] == [cols, rows] and sib[k]["num_patches_with_thumbnail"] == n,
                  f"tiling {k}: GotOcr2 grid {cols}x{rows} == InternVL dynamic_preprocess grid")
            agree += 1
    check(agree >= 15, f"{agree} tiling cases agree with the sibling's tiling_cases.json")
    return out


def main():
    require_node_modules()
    for p in (IMAGE_PATH, os.path.join(SIB_MODEL, "model.safetensors")):
        if not os.path.exists(p):
            sys.exit(f"missing sibling fixture {p} (run tools/reference/internvl/make_fixtures.py)")
    d = os.path.join(OUT, NAME)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    tok_files, vocab, merges, added = tokenizer_files()
    write_files(d, tok_files, sort_keys_for=SORTED_TOKENIZER_FILES)
    pybpe = PyBPE(vocab, merges, added)
    cfg = model_config(added)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "generation_config.json"), generation_config(added))
    write_json(os.path.join(d, "preprocessor_config.json"), PREPROCESSOR_CONFIG, sort_keys=True)
    write_json(os.path.join(d, "processor_config.json"), PROCESSOR_CONFIG, sort_keys=True)
    with open(os.path.join(d, "chat_template.jinja"), "w", encoding="utf-8", newline="\n") as f:
        f.write(R.CHAT_TEMPLATE)

    print(f"[{NAME}] self-checks")
    check(len(R.CHAT_TEMPLATE.encode("utf-8")) == 481,
          "chat_template.jinja is 481 bytes, the size of the hub's InternVL3-1B-hf chat_template.jinja")
    js = run_js(d, [{"op": "token_to_id", "token": t} for t in ADDED_TOKENS])
    check([r["id"] for r in js] == [added[t] for t in ADDED_TOKENS], "tokenizers.js ids of all added tokens")

    W = make_weights(R.resolve_config(cfg), seed=3003)
    st = os.path.join(d, "model.safetensors")
    R.save_safetensors(st, W, {"format": "pt"})
    back, meta = R.load_safetensors(st)
    check(meta == {"format": "pt"} and set(back) == set(W), "safetensors re-read: same keys and metadata")
    check(all(back[k].dtype == W[k].dtype and torch.equal(back[k], W[k]) for k in W),
          "safetensors re-read is bit-exact")
    model = R.InternVLHFRef(d)
    check(set(model.W) == set(W), f"{len(W)} tensors, every key used by the port")

    proc = R.GotOcr2ImageProcessorRef(PREPROCESSOR_CONFIG)
    image = Image.open(IMAGE_PATH)
    # tiling
    pr = proc.preprocess(image, **PROCESSOR_IMAGES_KWARGS_DEFAULTS, path="pil")
    pv, grid = pr["pixel_values"], pr["grid"]
    check(grid == (3, 2) and pv.shape == (7, 3, IMAGE_SIZE, IMAGE_SIZE), f"grid {grid}, pixel_values {tuple(pv.shape)}")
    tiling = tiling_cases()
    no_crop = proc.preprocess(image, path="pil")
    check(no_crop["num_patches"] == 1, "preprocessor_config alone (crop_to_patches=false) gives 1 patch; "
                                       "the processor default crop_to_patches=True gives 7")
    fast = proc.preprocess(image, **PROCESSOR_IMAGES_KWARGS_DEFAULTS, path="fast_float")
    u8d = (fast["uint8_patches"].astype(np.int16) - pr["uint8_patches"].astype(np.int16))
    fast_pv_diff = float((fast["pixel_values"] - pv).abs().max())

    # layer scales matter
    a = model.get_image_features(pv)
    k = "model.vision_tower.encoder.layer.0.lambda_1"
    saved = model.W[k].clone()
    model.W[k] = saved * 1.5
    b = model.get_image_features(pv)
    model.W[k] = saved
    check(not torch.allclose(a, b), "vision output changes when lambda_1 changes")
    feats, inter = model.get_image_features(pv, return_intermediates=True)
    check(torch.equal(feats, a), "image features deterministic")

    cases, tens = {}, {}
    print("[image case]")
    cases["image"], tens["image"] = run_case(model, d, pybpe, added, IMAGE_MESSAGES, image, proc, IMAGE_SEQ_LENGTH)
    print("[text case]")
    cases["text"], tens["text"] = run_case(model, d, pybpe, added, TEXT_MESSAGES, None, proc, IMAGE_SEQ_LENGTH)
    check(cases["image"]["generated_ids"] != cases["text"]["generated_ids"], "image and text cases differ")

    # effect of the GotOcr2ImageProcessorFast float path on this fixture
    ids_img = tens["image"]["input_ids"]
    l_fast = model.prompt_logits(ids_img, fast["pixel_values"])
    g_fast, _ = model.greedy_generate(ids_img, fast["pixel_values"], MAX_NEW_TOKENS, added["<|im_end|>"])
    fast_info = {
        "what": "GotOcr2ImageProcessorFast emulated on its float path (torch bicubic antialias on float32, clamp, "
                "round to uint8, then (x - mean*255)/(std*255) in float32).  NOT used for the expected tensors.",
        "uint8_pixels_differing": int((u8d != 0).sum()), "uint8_pixels_total": int(u8d.size),
        "uint8_max_abs_diff": int(np.abs(u8d).max()),
        "pixel_values_max_abs_diff": fast_pv_diff,
        "image_prompt_logits_max_abs_diff": float((l_fast - tens["image"]["prompt_logits"]).abs().max()),
        "greedy_ids": g_fast, "greedy_ids_equal_expected": g_fast == cases["image"]["generated_ids"],
    }
    print("  fast-path emulation:", json.dumps(fast_info)[:400])

    cross = conversion_cross_check(d, pybpe, added)

    tensors = {
        "pixel_values": pv.contiguous(),
        "image.input_ids": tens["image"]["input_ids"],
        "image.vision_embeddings": inter["vision_embeddings"].contiguous(),
        "image.vision_selected_hidden": inter["vision_selected_hidden"].contiguous(),
        "image.pixel_shuffled": inter["pixel_shuffled"].contiguous(),
        "image.image_features": feats.contiguous(),
        "image.inputs_embeds": model.inputs_embeds(ids_img, image_features=feats).contiguous(),
        "text.input_ids": tens["text"]["input_ids"],
    }
    for c in ("image", "text"):
        tensors[f"{c}.prompt_logits"] = tens[c]["prompt_logits"].contiguous()
        tensors[f"{c}.first_step_logits"] = tens[c]["prompt_logits"][-1].contiguous()
        tensors[f"{c}.generated_step_logits"] = tens[c]["step_logits"].contiguous()
    es = os.path.join(d, "expected.safetensors")
    R.save_safetensors(es, tensors, {"format": "pt"})
    back, _ = R.load_safetensors(es)
    check(set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors),
          "expected.safetensors re-read is bit-exact")

    all_margins = cases["image"]["greedy_top1_top2_margins"] + cases["text"]["greedy_top1_top2_margins"]
    expected = {
        "description": "Expected outputs of transformers' InternVLForConditionalGeneration + InternVLProcessor "
                       "(v4.52 line) for this checkpoint, computed by tools/reference/internvl-hf/internvl_hf_ref.py "
                       "(plain PyTorch, float32), tokenizers.js and @huggingface/jinja.",
        "generator": {"script": "tools/reference/internvl-hf/make_fixtures.py", "torch": torch.__version__,
                      "numpy": np.__version__, "pillow": PIL.__version__, "python": sys.version.split()[0],
                      "compute_dtype": "float32", "weights_stored_dtype": "float32",
                      "tokenizer": "@huggingface/tokenizers 0.2.0", "chat_template_engine": "@huggingface/jinja 0.5.11",
                      "transformers_code_followed": "v4.52 line (see tools/reference/internvl-hf/README.md)"},
        "preprocess": {
            "image": IMAGE_REL, "image_size_wh": list(image.size),
            "image_processor": "GotOcr2ImageProcessor (slow, PIL) -- see fast_processor_note",
            "processor_images_kwargs_defaults": PROCESSOR_IMAGES_KWARGS_DEFAULTS,
            "crop_to_patches_in_preprocessor_config": PREPROCESSOR_CONFIG["crop_to_patches"],
            "crop_to_patches_effective": True,
            "tile_size_hw": [IMAGE_SIZE, IMAGE_SIZE], "min_patches": 1, "max_patches": 12, "use_thumbnail": True,
            "grid_cols_rows": list(grid), "num_patches": int(pv.shape[0]),
            "tile_order": "row-major over the image resized to (cols*S, rows*S), thumbnail (whole image resized to "
                          "S x S) last, only when cols*rows > 1",
            "resize": "PIL Image.resize(..., BICUBIC) on uint8 RGB (resample 3); the per-patch do_resize to S x S "
                      "is an identity (Pillow returns a copy for an unchanged size)",
            "rescale_normalize": "float32(float64(u8) * rescale_factor), then (x - mean) / std with float32 mean/std",
            "mean": PREPROCESSOR_CONFIG["image_mean"], "std": PREPROCESSOR_CONFIG["image_std"],
            "fast_processor_note": fast_info,
        },
        "image_seq_length": IMAGE_SEQ_LENGTH,
        "image_token": "<IMG_CONTEXT>", "image_token_id": added["<IMG_CONTEXT>"],
        "start_image_token": "<img>", "start_image_token_id": added["<img>"],
        "end_image_token": "</img>", "end_image_token_id": added["</img>"],
        "video_token": "<video>", "video_token_id": added["<video>"],
        "eos_token": "<|im_end|>", "eos_token_id": added["<|im_end|>"],
        "generation": {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False, "num_beams": 1,
                       "eos_token_id": added["<|im_end|>"],
                       "note": "generated_ids include the eos id if produced (generation stops there)"},
        "vision_feature_layer": -1, "vision_feature_select_strategy": "default",
        "tiling_cases": tiling,
        "min_greedy_top1_top2_margin": min(all_margins),
        "cases": cases,
        "conversion_cross_check": cross,
        "tensors": {
            "pixel_values": "[num_patches, 3, S, S] float32, processor output (slow GotOcr2ImageProcessor)",
            "image.input_ids": "[T] int64 prompt ids", "text.input_ids": "[T] int64 prompt ids",
            "image.vision_embeddings": "[num_patches, 1+(S/p)^2, C_vit] InternVLVisionEmbeddings output",
            "image.vision_selected_hidden": "[num_patches, 1+(S/p)^2, C_vit] vision_tower last_hidden_state "
                                            "(vision_feature_layer -1; layernorm is Identity: use_mean_pooling)",
            "image.pixel_shuffled": "[num_patches, image_seq_length, 4*C_vit] after dropping CLS, pixel_shuffle, "
                                    "reshape; before multi_modal_projector",
            "image.image_features": "[num_patches, image_seq_length, H_llm] get_image_features output",
            "image.inputs_embeds": "[T, H_llm] after masked_scatter at image_token_id",
            "<case>.prompt_logits": "[T, vocab] logits at every prompt position",
            "<case>.first_step_logits": "[vocab] logits at the last prompt position",
            "<case>.generated_step_logits": "[n_generated, vocab] logits used to pick each greedy token",
        },
    }
    write_json(os.path.join(d, "expected.json"), expected)
    print(f"  min top1-top2 margin over all greedy steps: {min(all_margins):.6f}")
    print(f"fixtures written to {OUT}: {total_size(OUT) / 1e6:.3f} MB")


if __name__ == "__main__":
    main()
