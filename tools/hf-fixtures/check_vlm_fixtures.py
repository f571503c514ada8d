"""Runs HF transformers itself on the vision-language fixtures that tools/reference wrote, and saves what it computes.

The fixtures under tests/GenRecal.Tests/Fixtures/{internvl-hf,qwen2vl} hold expected outputs from independent
plain-PyTorch ports (tools/reference). This script loads the same checkpoint folders with transformers'
AutoModelForImageTextToText and AutoProcessor (no code of ours) and records, per checkpoint:
  * the model on the fixture's own input ids and pixel values: logits at every prompt position and 8 greedy ids;
  * the processor on the image file and the chat messages: the rendered prompt, input ids and pixel values;
  * the largest differences from the port's expected tensors.
Output, per checkpoint NAME: NAME.json (versions, differences, ids) and NAME.safetensors (logits, ids, pixel values),
committed as Fixtures/.../hf-transformers.{json,safetensors} and read by the C# tests.

Run where transformers (5.x) and PyTorch are installed, from the repository root:
    python3 tools/hf-fixtures/check_vlm_fixtures.py OUT_DIR
"""
import inspect
import json
import os
import sys
import traceback

import torch
import transformers
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor

FIXTURES = "tests/GenRecal.Tests/Fixtures"
CHECKPOINTS = {
    "internvl3-hf": f"{FIXTURES}/internvl-hf/internvl3-hf",
    "qwen2-vl": f"{FIXTURES}/qwen2vl/qwen2-vl",
    "qwen2.5-vl": f"{FIXTURES}/qwen2vl/qwen2.5-vl",
}


def max_diff(a, b):
    a, b = a.float(), b.float()
    return None if a.shape != b.shape else float((a - b).abs().max())


def prompt_ids(exp, t, case):
    """The -hf fixture stores the ids as a tensor; the Qwen2-VL fixtures in expected.json."""
    key = f"{case}.input_ids"
    return t[key] if key in t else torch.tensor(exp["cases"][case]["input_ids"], dtype=torch.int64)


def model_inputs(case, ids, pixel_values, grid, processor_inputs, image_token_id):
    """The fixture's own ids and pixel values, plus whatever else this transformers version's forward needs from its
    processor (5.x: mm_token_type_ids for the Qwen-VL M-RoPE index) when the processor made the same ids."""
    kw = dict(input_ids=ids[None], attention_mask=torch.ones(1, ids.numel(), dtype=torch.long))
    if processor_inputs is not None and processor_inputs["input_ids"][0].tolist() == ids.tolist():
        for k, v in processor_inputs.items():
            if k not in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw"):
                kw[k] = v
    elif "mm_token_type_ids" in (processor_inputs or {}):
        kw["mm_token_type_ids"] = (ids[None] == image_token_id).to(torch.long)
    if case == "image":
        kw["pixel_values"] = pixel_values
        if grid is not None:
            kw["image_grid_thw"] = grid
    return kw


def run_model(model, kw, eos):
    with torch.no_grad():
        logits = model(**kw).logits[0].float()
        gen = model.generate(**kw, max_new_tokens=8, do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=eos)
    return logits, gen[0, kw["input_ids"].shape[1]:]


def load_processor(d):
    """The slow (PIL) image processors are the ones the ports and GenRecal.NET follow; fall back to the default."""
    try:
        return AutoProcessor.from_pretrained(d, use_fast=False), "slow (use_fast=False)"
    except Exception as e:  # noqa: BLE001 - recorded in the report
        return AutoProcessor.from_pretrained(d), f"default (use_fast=False refused: {type(e).__name__}: {e})"


def check(name, d):
    exp = json.load(open(f"{d}/expected.json"))
    t = load_file(f"{d}/expected.safetensors")
    eos = exp["eos_token_id"]
    rep = dict(transformers=transformers.__version__, torch=torch.__version__, checkpoint=d,
               compute_dtype="float32", attn_implementation="eager")
    out = {}
    model = AutoModelForImageTextToText.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    rep["model_class"] = type(model).__name__
    grid_list = exp["cases"]["image"].get("image_grid_thw")
    grid = torch.tensor(grid_list) if grid_list else None

    # (a) the processor on the image file and the messages (first: 5.x forwards need some of its outputs)
    processor, which = load_processor(d)
    rep["processor"] = dict(used=which, image_processor=type(processor.image_processor).__name__)
    processed = {}
    image = Image.open(os.path.join(d, exp["preprocess"]["image"])).convert("RGB")
    for case in ("image", "text"):
        c = exp["cases"][case]
        messages = [dict(m, content=[{k: v for k, v in part.items() if k != "path"} for part in m["content"]])
                    for m in c["messages"]]
        rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        expected_rendered = c.get("rendered_chat_template", c.get("prompt_from_chat_template"))
        inputs = processor(text=[rendered], images=[image] if case == "image" else None, return_tensors="pt")
        processed[case] = inputs
        rep["processor"].setdefault("output_keys", sorted(inputs.keys()))
        ids = inputs["input_ids"][0]
        out[f"processor.{case}.input_ids"] = ids.to(torch.int64).contiguous()
        r = dict(rendered_equal=rendered == expected_rendered, rendered=rendered,
                 input_ids_equal=ids.tolist() == prompt_ids(exp, t, case).tolist())
        if case == "image":
            pv = inputs["pixel_values"].float()
            out["processor.pixel_values"] = pv.contiguous()
            r["pixel_values_shape"] = list(pv.shape)
            r["pixel_values_max_abs_diff_vs_expected"] = max_diff(pv, t["pixel_values"])
            if "image_grid_thw" in inputs:
                r["image_grid_thw"] = inputs["image_grid_thw"].tolist()
            with torch.no_grad():
                logits = model(**inputs).logits[0].float()
            r["prompt_logits_max_abs_diff_vs_expected"] = max_diff(logits, t["image.prompt_logits"])
        rep["processor"][case] = r

    # (b) the model on the fixture's own ids and pixel values
    for case in ("image", "text"):
        ids = prompt_ids(exp, t, case)
        logits, gen = run_model(model, model_inputs(case, ids, t["pixel_values"], grid, processed[case], exp["image_token_id"]), eos)
        out[f"{case}.prompt_logits"] = logits.contiguous()
        out[f"{case}.generated_ids"] = gen.to(torch.int64).contiguous()
        rep[case] = dict(
            prompt_logits_max_abs_diff_vs_expected=max_diff(logits, t[f"{case}.prompt_logits"]),
            generated_ids=gen.tolist(), expected_generated_ids=exp["cases"][case]["generated_ids"],
            generated_ids_equal=gen.tolist() == exp["cases"][case]["generated_ids"])
        if grid is not None and hasattr(model.model, "get_rope_index"):
            try:
                kw = model_inputs(case, ids, t["pixel_values"], grid, processed[case], exp["image_token_id"])
                accepted = inspect.signature(model.model.get_rope_index).parameters
                pos = model.model.get_rope_index(**{k: v for k, v in kw.items() if k in accepted})[0][:, 0]
                out[f"{case}.position_ids"] = pos.to(torch.int64).contiguous()
                rep[case]["position_ids_equal"] = bool(torch.equal(pos.cpu(), t[f"{case}.position_ids"]))
            except Exception as e:  # noqa: BLE001
                rep[case]["position_ids_error"] = f"{type(e).__name__}: {e}"

    save_file(out, os.path.join(OUT, f"{name}.safetensors"), metadata=dict(transformers=transformers.__version__))
    return rep


if __name__ == "__main__":
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    failed = 0
    for name, d in CHECKPOINTS.items():
        try:
            rep = check(name, d)
        except Exception:  # noqa: BLE001 - one checkpoint's failure must not hide the others' results
            failed += 1
            rep = dict(error=traceback.format_exc())
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(rep, f, indent=1)
        print(name, json.dumps(rep)[:1500], flush=True)
    sys.exit(1 if failed else 0)
