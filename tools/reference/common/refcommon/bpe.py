"""The small Qwen2-style byte-level BPE of the fixtures: a plain trainer and an independent Python
encoder/decoder (the cross-check for tokenizers.js).

* QWEN2_PATTERN is the pre-tokenizer regex of Qwen2's tokenizer.json (Split, behavior Isolated, invert false).
* Symbols 0..255 are the GPT-2 / Qwen2 byte <-> unicode table, in the order of Qwen2's vocab.json.
* Text is NFC-normalized (Qwen2's normalizer) before pre-tokenization.
"""

from __future__ import annotations

import collections
import unicodedata

import regex

# Qwen2 tokenizer.json pre-tokenizer regex (Split, behavior Isolated, invert false)
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# GPT-2 / Qwen2 byte <-> unicode table (ids 0..255 follow this order, like Qwen2's vocab.json).
def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + \
        list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


BS, CS = bytes_to_unicode()
BYTE_ENC = {b: c for b, c in zip(BS, CS)}
BYTE_DEC = {c: b for b, c in zip(BS, CS)}
PRETOK = regex.compile(QWEN2_PATTERN)


def pretokenize(text):
    return [''.join(BYTE_ENC[b] for b in piece.encode('utf-8')) for piece in PRETOK.findall(text)]


def train_bpe(corpus, vocab_size):
    """Plain BPE trainer: most frequent adjacent pair wins, ties -> lexicographically
    smallest (left, right). Words come from the Qwen2 pre-tokenizer on NFC text, one line at a time
    (each non-empty line + '\\n').  Returns (vocab {token: id}, merges [(left, right)])."""
    words = collections.Counter()
    for line in corpus.split('\n'):
        if line:
            for w in pretokenize(unicodedata.normalize('NFC', line + '\n')):
                words[tuple(w)] += 1
    vocab = {c: i for i, c in enumerate(CS)}
    merges = []
    words = {w: f for w, f in words.items()}
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for w, f in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += f
        if not pairs:
            raise RuntimeError('corpus too small for requested vocab size')
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new_tok = best[0] + best[1]
        if new_tok not in vocab:
            vocab[new_tok] = len(vocab)
        nw = {}
        for w, f in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(new_tok)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            t = tuple(out)
            nw[t] = nw.get(t, 0) + f
        words = nw
    return vocab, merges


class PyBPE:
    """Independent Python byte-level BPE encoder/decoder (cross-check for tokenizers.js).

    added: {content: id} of the added tokens, matched before pre-tokenization (longest first).
    special: the added tokens that decode(skip_special=True) drops (default: all of them)."""

    def __init__(self, vocab, merges, added, special=None):
        self.special = set(added) if special is None else set(special)
        self.vocab = vocab
        self.inv = {i: t for t, i in vocab.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.added = added  # content -> id
        for c, i in added.items():
            self.inv[i] = c
        alts = sorted(added, key=len, reverse=True)
        self.added_re = regex.compile('(' + '|'.join(regex.escape(a) for a in alts) + ')')

    def bpe(self, word):
        w = list(word)
        while len(w) > 1:
            best = None
            for i in range(len(w) - 1):
                r = self.ranks.get((w[i], w[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            pair = (w[best[1]], w[best[1] + 1])
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w = out
        return w

    def encode(self, text):
        """Returns (ids, tokens)."""
        ids, toks = [], []
        for seg in self.added_re.split(text):
            if not seg:
                continue
            if seg in self.added:
                ids.append(self.added[seg])
                toks.append(seg)
                continue
            for piece in pretokenize(unicodedata.normalize('NFC', seg)):
                for t in self.bpe(piece):
                    ids.append(self.vocab[t])
                    toks.append(t)
        return ids, toks

    def decode(self, ids, skip_special=False):
        out = bytearray()
        text = ''
        for i in ids:
            t = self.inv[i]
            if t in self.added:
                if skip_special and t in self.special:
                    continue
                text += bytes(out).decode('utf-8', errors='replace')
                out = bytearray()
                text += t
            else:
                out += bytes(BYTE_DEC[c] for c in t)
        return text + bytes(out).decode('utf-8', errors='replace')
