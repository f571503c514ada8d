"""Building blocks of the HF tokenizer files of the fixtures' Qwen2-style byte-level BPE
(tokenizer.json, merges.txt, added_tokens.json and the added-token dicts of tokenizer_config.json /
special_tokens_map.json).  The family-specific tokenizer_config.json / special_tokens_map.json key sets
are put together in each family's make_fixtures.py.  Key order matters (the files are json.dump'ed in
insertion order), so every dict here is built in the order HF writes it."""

from __future__ import annotations

from .bpe import QWEN2_PATTERN

BYTELEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}


def added_token_entry(token_id, content, special=True):
    """One entry of tokenizer.json "added_tokens"."""
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}


def added_token_decoder(content, special=True):
    """One value of tokenizer_config.json "added_tokens_decoder" (AddedToken.__getstate__ order)."""
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": special}


def special_token_map_entry(content):
    """A special_tokens_map.json token dict (the added_tokens_decoder dict without "special")."""
    return {k: v for k, v in added_token_decoder(content).items() if k != "special"}


def qwen2_tokenizer_json(vocab, merges, added_entries, ignore_merges=None):
    """tokenizer.json of a Qwen2-style tokenizer: NFC normalizer, Qwen2 Split regex (Isolated) +
    ByteLevel(use_regex false) pre-tokenizer, ByteLevel post-processor and decoder, BPE model.
    ignore_merges: None leaves the key out (older tokenizers serialization), else it is written."""
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
             "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False}
    if ignore_merges is not None:
        model["ignore_merges"] = ignore_merges
    model["vocab"] = vocab
    model["merges"] = [f"{a} {b}" for a, b in merges]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_entries,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            dict(BYTELEVEL)]},
        "post_processor": dict(BYTELEVEL),
        "decoder": dict(BYTELEVEL),
        "model": model,
    }


def merges_txt(merges):
    return "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)


def added_tokens_json(added):
    """added_tokens.json: {content: id}, sorted by content."""
    return {c: added[c] for c in sorted(added)}
