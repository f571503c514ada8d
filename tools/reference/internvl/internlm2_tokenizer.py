"""InternLM2Tokenizer reference: a tiny SentencePiece BPE model in the InternLM2 style, and the token-id logic
of the slow `InternLM2Tokenizer` (tokenization_internlm2.py, "Modified from
transformers.model.llama.tokenization_llama.LlamaTokenizer") inside transformers' `PreTrainedTokenizer`.

What the real tokenizer does with `tokenizer(query)` (the call InternVLChatModel.chat() makes):

  1. PreTrainedTokenizer.tokenize splits the text on every added token (tokens_trie over the contents of
     `added_tokens_decoder`; leftmost match, longest when several start at the same place).  All of
     InternVL2.5-8B's added tokens are AddedToken(lstrip=False, rstrip=False, single_word=False,
     normalized=False, special=True), so nothing around them is stripped.  Each added token becomes
     one token; empty chunks are dropped.
  2. Every other chunk goes to InternLM2Tokenizer._tokenize = `sp_model.encode(chunk, out_type=str)`:
     SentencePiece runs on each chunk separately, so the model's normalizer_spec (add_dummy_prefix,
     remove_extra_whitespaces, normalization rule) applies per chunk.
  3. convert_tokens_to_ids: an added token's content -> its id from added_tokens_decoder (checked first);
     any other piece -> `sp_model.piece_to_id(piece)`.
  4. build_inputs_with_special_tokens: `[bos_token_id] if add_bos_token` + ids (+ `[eos_token_id]` if
     add_eos_token).  bos_token_id / eos_token_id are the properties `sp_model.bos_id()` / `sp_model.eos_id()`
     (1 / 2).  add_bos_token defaults to True and the real tokenizer_config.json sets it true, so the ids
     InternVL's chat() feeds the model start with <s> = 1.

The real InternLM2 tokenizer.model is a SentencePiece BPE model (tokenization_internlm2_fast.py's converter
raises "InternLM2 is supposed to be a BPE model!" otherwise) with byte fallback (the converter builds the fast
BPE with byte_fallback=True) and <unk>=0, <s>=1, </s>=2.  Its last six pieces (ids 92538..92543) are
"[UNUSED_TOKEN_141]".."[UNUSED_TOKEN_146]"; internlm2(_5)-chat's tokenizer_config.json re-labels those ids
through added_tokens_decoder as <|plugin|>, <|interpreter|>, <|action_end|>, <|action_start|>, <|im_end|>,
<|im_start|> (so "<|im_start|>" in text is split out by step 1 and mapped to 92543, although the piece
inside tokenizer.model is "[UNUSED_TOKEN_146]").  InternVL then adds <img> </img> <IMG_CONTEXT> <quad>
</quad> <ref> </ref> <box> </box> as new tokens 92544..92552 (vocab_size 92553).  The tiny model here
reproduces that structure at small ids.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Dict, List, Optional, Sequence

import sentencepiece as spm

# InternLM2-chat's in-vocabulary chat tokens: (sentencepiece piece, added_tokens_decoder content), in id order
CHAT_TOKENS = [('[UNUSED_TOKEN_141]', '<|plugin|>'), ('[UNUSED_TOKEN_142]', '<|interpreter|>'),
               ('[UNUSED_TOKEN_143]', '<|action_end|>'), ('[UNUSED_TOKEN_144]', '<|action_start|>'),
               ('[UNUSED_TOKEN_145]', '<|im_end|>'), ('[UNUSED_TOKEN_146]', '<|im_start|>')]
# InternVL's added tokens (internvl_chat/internvl/train/constants.py order), ids after the sentencepiece vocab
INTERNVL_TOKENS = ['<img>', '</img>', '<IMG_CONTEXT>', '<quad>', '</quad>', '<ref>', '</ref>', '<box>', '</box>']

# spm_train options of the tiny model.  model_type / byte_fallback / control ids follow the real model
# (see the module docstring); the normalizer settings are this fixture's choice, written into
# tokenizer.model's normalizer_spec, which is what an encoder must read.
TRAINER_OPTIONS = dict(
    model_type='bpe', byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name='identity',
    split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.98, num_threads=1,
)

SP_USER_DEFINED = 4  # ModelProto.SentencePiece.Type.USER_DEFINED


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _piece_message(piece: str, score: float, ptype: int) -> bytes:
    """ModelProto.SentencePiece: 1 piece (string), 2 score (float), 3 type (enum)."""
    p = piece.encode('utf-8')
    body = b'\x0a' + _varint(len(p)) + p + b'\x15' + struct.pack('<f', score) + b'\x18' + _varint(ptype)
    return b'\x0a' + _varint(len(body)) + body   # ModelProto field 1 (repeated pieces), length-delimited


def append_pieces(model_proto: bytes, pieces: Sequence[str], score: float = 0.0,
                  ptype: int = SP_USER_DEFINED) -> bytes:
    """Append pieces to a serialized ModelProto.  Protobuf concatenates repeated fields in the order they
    appear, wherever they are in the message, so the new pieces get the next ids (no protobuf package needed)."""
    return model_proto + b''.join(_piece_message(p, score, ptype) for p in pieces)


def train_sentencepiece(lines: Sequence[str], vocab_size: int) -> bytes:
    """Train the tiny BPE model in memory; returns the serialized tokenizer.model (deterministic for a given
    input with num_threads=1)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(list(lines)), model_writer=buf, vocab_size=vocab_size,
                                   minloglevel=2, **TRAINER_OPTIONS)
    return buf.getvalue()


def build_tokenizer_model(lines: Sequence[str], vocab_size: int) -> bytes:
    """tokenizer.model: trained BPE pieces, then the six [UNUSED_TOKEN_14x] pieces as the last ids."""
    return append_pieces(train_sentencepiece(lines, vocab_size), [p for p, _ in CHAT_TOKENS])


class InternLM2TokenizerRef:
    """The slow InternLM2Tokenizer's encode path (see the module docstring)."""

    def __init__(self, model_proto: bytes, added_tokens_decoder: Dict[int, str], add_bos_token: bool = True,
                 add_eos_token: bool = False):
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(model_proto)
        self.added_decoder = dict(added_tokens_decoder)
        self.added_encoder = {c: i for i, c in self.added_decoder.items()}
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        alts = sorted(self.added_encoder, key=lambda t: (-len(t), t))   # longest first -> leftmost-longest
        self._split_re = re.compile('(' + '|'.join(re.escape(t) for t in alts) + ')')

    @property
    def vocab_size(self):            # InternLM2Tokenizer.vocab_size = sp_model.get_piece_size()
        return self.sp.get_piece_size()

    def __len__(self):               # PreTrainedTokenizer.__len__: base vocab + added tokens beyond it
        return len(set(range(self.vocab_size)) | set(self.added_decoder))

    @property
    def bos_token_id(self):
        return self.sp.bos_id()

    @property
    def eos_token_id(self):
        return self.sp.eos_id()

    def tokenize(self, text: str) -> List[str]:
        out: List[str] = []
        for chunk in self._split_re.split(text):
            if not chunk:
                continue
            if chunk in self.added_encoder:
                out.append(chunk)
            else:
                out.extend(self.sp.encode(chunk, out_type=str))
        return out

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.added_encoder[tokens] if tokens in self.added_encoder else self.sp.piece_to_id(tokens)
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.added_decoder[ids] if ids in self.added_decoder else self.sp.id_to_piece(ids)
        return [self.convert_ids_to_tokens(i) for i in ids]

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        if not add_special_tokens:
            return ids
        bos = [self.bos_token_id] if self.add_bos_token else []
        eos = [self.eos_token_id] if self.add_eos_token else []
        return bos + ids + eos

    def sp_chunks(self, text: str) -> List[Optional[str]]:
        """The chunks step 1 hands to sentencepiece (None for an added token) -- for the fixture's notes."""
        return [None if c in self.added_encoder else c for c in self._split_re.split(text) if c]
