"""Writes tiny HuggingFace checkpoints and their reference outputs as test fixtures.

Run where PyTorch and transformers are installed (the project's C# code never needs Python):
    python tools/hf-fixtures/make_fixtures.py OUT_DIR
Each model directory gets config.json + safetensors exactly as `save_pretrained` writes them, and
reference.json with input ids, logits, last hidden states and greedy continuations computed by
HF transformers in float32 with eager attention.
"""
import json, os, sys
import torch

out = sys.argv[1]
torch.manual_seed(0)
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM, LlamaConfig, LlamaForCausalLM

def dump(model, name, shard=None):
    d = os.path.join(out, name)
    model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
    model.eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (2, 9), generator=g)
    with torch.no_grad():
        o = model(input_ids=ids, output_hidden_states=True)
        # padded batch: row 1 left-padded by 3 (attention mask zeros), explicit position ids
        mask = torch.ones_like(ids); mask[1, :3] = 0
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        op = model(input_ids=ids, attention_mask=mask, position_ids=pos)
        gen = model.generate(ids[:1, :5], max_new_tokens=8, do_sample=False, eos_token_id=None,
                             pad_token_id=0, min_new_tokens=8)
    ref = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "input_ids": ids.tolist(),
        "logits": o.logits.float().tolist(),
        "last_hidden_state": o.hidden_states[-1].float().tolist(),
        "padded_attention_mask": mask.tolist(),
        "padded_position_ids": pos.tolist(),
        "padded_logits": op.logits.float().tolist(),
        "greedy_prompt": ids[:1, :5].tolist()[0],
        "greedy_ids": gen[0, 5:].tolist(),
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)

qcfg = Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                   rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                   attn_implementation="eager", torch_dtype="float32")
q = Qwen2ForCausalLM(qcfg)
with torch.no_grad():  # HF init gives zero biases; random ones make the bias path observable
    for p in q.parameters():
        p.add_(torch.randn_like(p) * 0.02)
dump(q, "tiny-qwen2")

lcfg = LlamaConfig(vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                   rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
                   attn_implementation="eager", torch_dtype="float32")
l = LlamaForCausalLM(lcfg)
dump(l, "tiny-llama-sharded", shard="20KB")

# A byte-level BPE tokenizer.json trained by HF tokenizers, and reference encodings.
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
corpus = ["What colour is the circle? The circle is red.", "How many squares are there? 3",
          "Read the text in the image: HELLO", "The bar for B is 12.5, the bar for A is 7.",
          "Which shape is left of the triangle? square", "héllo wörld — naïve café 日本"] * 20
trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(corpus, trainer)
td = os.path.join(out, "tiny-bpe-tokenizer"); os.makedirs(td, exist_ok=True)
tok.save(os.path.join(td, "tokenizer.json"))
tests = ["What colour is the circle?", "The bar for C is 42.", "<|im_start|>user\n<image>\nHow many?<|im_end|>",
         "héllo wörld 日本語 unseen-words zzz", "  two  spaces\n\nnewlines"]
with open(os.path.join(td, "reference.json"), "w") as f:
    json.dump({"tokenizers_version": __import__("tokenizers").__version__,
               "cases": [{"text": t, "ids": tok.encode(t).ids} for t in tests]}, f)
print("ok", transformers.__version__, torch.__version__)
for root, _, files in os.walk(out):
    for fn in files:
        print(os.path.join(root, fn), os.path.getsize(os.path.join(root, fn)))
