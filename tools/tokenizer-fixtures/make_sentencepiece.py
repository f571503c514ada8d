"""Trains a tiny SentencePiece BPE tokenizer.model (LLaMA-2's settings: byte fallback, digits split, dummy prefix)
and records what sentencepiece itself gives: ids without BOS/EOS (GenRecal's Encode never adds them), pieces and
the decoded text. Usage: /usr/bin/python3 make_sentencepiece.py <output dir> (needs Debian's python3-sentencepiece)."""
import io
import json
import os
import sys

import sentencepiece as spm

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
corpus = """The quick brown fox jumps over the lazy dog. I have 123 apples and 456 pears.
In 2024, 1,000,000 people counted 12345 tokens; they're sure it's fine, don't you think?
What colour is the circle? The bar for C is 42. How many red squares are there? There are 3.
Hello world, hello again. This is a test of the tokenizer with numbers 100 200 300 1000 and words.
the the the and and of of to to in in is is it it that that you you for for on on with with""".splitlines()
model = io.BytesIO()
spm.SentencePieceTrainer.train(
    sentence_iterator=iter(corpus * 20), model_writer=model, vocab_size=400, model_type="bpe", byte_fallback=True,
    split_digits=True, character_coverage=1.0, add_dummy_prefix=True, remove_extra_whitespaces=False,
    normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, seed_sentencepiece_size=1000)
with open(os.path.join(out, "tokenizer.model"), "wb") as f:
    f.write(model.getvalue())
sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
texts = ["I have 123 apples", "1,000,000", "Hello world", "DON'T You'RE", "multiple   spaces and\ttabs",
         "日本語のテキスト", "emoji 😀👍🏽", "What colour is the circle? red", "a", "zzz unseen"]
cases = [{"text": t, "ids": sp.encode(t), "pieces": sp.encode(t, out_type=str), "decoded": sp.decode(sp.encode(t))} for t in texts]
with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=1)
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"reference": f"sentencepiece {spm.__version__}", "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
               "unk_id": sp.unk_id(), "vocab_size": sp.get_piece_size(), "cases": cases}, f, ensure_ascii=False, indent=1)
print("wrote", out)
