// Builds small tokenizer files in the layouts real models ship (Qwen2, Llama-3, Llama-2 fast, a Digits/Metaspace
// mix, Qwen2's slow vocab.json + merges.txt) and records what HF's tokenizers.js (an independent port of HF
// tokenizers) gives for many texts: ids, tokens and the decoded text. GenRecal's tests compare against these.
// Run: see README.md.
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";

const out = process.argv[2];
if (!out) throw new Error("usage: node make_fixtures.mjs <output dir>");

// ---- a small corpus to learn merges from ----------------------------------------------------------------
const corpus = `The quick brown fox jumps over the lazy dog. I have 123 apples and 456 pears.
In 2024, 1,000,000 people counted 12345 tokens; they're sure it's fine, don't you think?
What colour is the circle? The bar for C is 42. How many red squares are there? There are 3.
Hello world, hello again. This is a test of the tokenizer with numbers 100 200 300 1000 and words.
the the the and and of of to to in in is is it it that that you you for for on on with with`;

// GPT-2's byte-to-unicode alphabet
function byteChars() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const map = new Array(256);
  bs.forEach((b, i) => (map[b] = String.fromCharCode(cs[i])));
  return map;
}
const BYTE = byteChars();
const byteLevel = (s) => [...new TextEncoder().encode(s)].map((b) => BYTE[b]).join("");

/** Learns `count` merges over words given as arrays of symbols (greedy most-frequent pair, ties by first seen). */
function learnMerges(words, count) {
  const merges = [];
  words = words.map((w) => [...w]);
  for (let k = 0; k < count; k++) {
    const freq = new Map();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      const key = JSON.stringify([w[i], w[i + 1]]);
      freq.set(key, (freq.get(key) ?? 0) + 1);
    }
    let best = null, bestN = 1;
    for (const [key, n] of freq) if (n > bestN) { best = key; bestN = n; }
    if (!best) break;
    const [a, b] = JSON.parse(best);
    merges.push([a, b]);
    words = words.map((w) => {
      const r = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) { r.push(a + b); i++; } else r.push(w[i]);
      }
      return r;
    });
  }
  return merges;
}

// ---- byte-level BPE (Qwen2 / Llama-3 style) ---------------------------------------------------------------
// words split GPT-2 style but keeping digit runs whole, so digit merges ("1" "2") exist: Qwen2's one-digit split
// must still give one id per digit
const words = corpus.match(/ ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+/gu).map((w) => [...byteLevel(w)]);
const byteMerges = learnMerges(words, 220);
const byteVocab = {};
BYTE.forEach((c, b) => (byteVocab[c] = b));
for (const [a, b] of byteMerges) if (!(a + b in byteVocab)) byteVocab[a + b] = Object.keys(byteVocab).length;
let next = Object.keys(byteVocab).length;

const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const added = (id, content, flags = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...flags,
});
const qwenAdded = [
  added(next, "<|endoftext|>"), added(next + 1, "<|im_start|>"), added(next + 2, "<|im_end|>"),
  added(next + 3, "<tool>", { special: false, lstrip: true, rstrip: true }),
  added(next + 4, "[NUM]", { special: false, normalized: true }),
  // tokenizers.js does not apply single_word (it would match "<w>" inside "a<w>b"); HfTokenizerFilesTests checks that by HF's documented rule
  added(next + 5, "<w>", { special: false, single_word: true }),
];
const byteLevelStep = (trim) => ({ type: "ByteLevel", add_prefix_space: false, trim_offsets: trim, use_regex: false });
const bpe = (vocab, merges, extra = {}) => ({
  type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false,
  byte_fallback: false, ignore_merges: false, vocab, merges, ...extra,
});

const qwen2 = {
  version: "1.0", truncation: null, padding: null, added_tokens: qwenAdded,
  normalizer: { type: "NFC" },
  pre_tokenizer: { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { Regex: QWEN2_PATTERN }, behavior: "Isolated", invert: false }, byteLevelStep(false)] },
  post_processor: byteLevelStep(false),
  decoder: byteLevelStep(false),
  model: bpe(byteVocab, byteMerges),
};
const llama3 = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [added(next, "<|begin_of_text|>"), added(next + 1, "<|end_of_text|>"), added(next + 2, "<|eot_id|>"),
    added(next + 3, "<|start_header_id|>"), added(next + 4, "<|end_header_id|>")],
  normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { Regex: LLAMA3_PATTERN }, behavior: "Isolated", invert: false }, byteLevelStep(true)] },
  post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: bpe(byteVocab, byteMerges.map(([a, b]) => `${a} ${b}`), { ignore_merges: true }),
};

// ---- SentencePiece-style BPE with byte fallback (Llama-2 fast; Digits + Metaspace) --------------------------
const SP = "\u2581";
const spWords = ("\n" + corpus).split(/\s+/).filter((w) => w).map((w) => [...(SP + w)]);
const spMerges = learnMerges(spWords, 160);
const spVocab = { "<unk>": 0, "<s>": 1, "</s>": 2 };
for (let b = 0; b < 256; b++) spVocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
for (const c of [...new Set(spWords.flat())].sort()) spVocab[c] = Object.keys(spVocab).length;
for (const [a, b] of spMerges) if (!(a + b in spVocab)) spVocab[a + b] = Object.keys(spVocab).length;
const spNext = Object.keys(spVocab).length;
const spAdded = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"), added(spNext, "<image>", { lstrip: true })];
const llama2 = {
  version: "1.0", truncation: null, padding: null, added_tokens: spAdded,
  normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SP }, { type: "Replace", pattern: { String: " " }, content: SP }] },
  pre_tokenizer: null,
  post_processor: { type: "TemplateProcessing", single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }], special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } } },
  decoder: { type: "Sequence", decoders: [
    { type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" },
    { type: "Strip", content: " ", start: 1, stop: 0 }] },
  model: bpe(spVocab, spMerges, { unk_token: "<unk>", fuse_unk: true, byte_fallback: true }),
};
const metaspace = {
  ...llama2,
  normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Lowercase" }] },
  pre_tokenizer: { type: "Sequence", pretokenizers: [
    { type: "Digits", individual_digits: true },
    { type: "Metaspace", replacement: SP, prepend_scheme: "always", split: true }] },
  post_processor: null,
  decoder: { type: "Sequence", decoders: [{ type: "ByteFallback" }, { type: "Metaspace", replacement: SP, prepend_scheme: "always", split: true }] },
};
// Llama-2 as transformers writes it with legacy=false: Metaspace "first" instead of Prepend + Replace. tokenizers.js
// decides "first" per added-token section where HF's Rust code looks at the piece's offset in the original text;
// the two agree on every text here (no text starts with an added token and none is split before Metaspace)
const metaspaceFirst = {
  ...llama2,
  normalizer: null,
  pre_tokenizer: { type: "Metaspace", replacement: SP, prepend_scheme: "first", split: false },
  decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" },
    { type: "Strip", content: " ", start: 1, stop: 0 }] },
};

// ---- texts -------------------------------------------------------------------------------------------------
const texts = [
  "I have 123 apples", "1,000,000", "3.14159 and 2024-01-31", "DON'T You'RE we'LL it's I'm they've",
  "Hello world", "  leading and trailing  ", "multiple   spaces\tand\ttabs\n\nand\r\nnewlines\n", " \n \n",
  "日本語のテキスト，中文。", "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇯🇵", "math 𝐀𝐁𝐂 and 𠀀𠀁 letters",
  "cafe\u0301 and caf\u00e9 (NFD and NFC)", "ﬁ ligature and ① circled and Ｆｕｌｌ width",
  "What colour is the circle? red", "zzz qqq xxyy unseen", "a", "", "The quick brown fox jumps over the lazy dog.",
];
const withSpecial = {
  qwen2: ["<|im_start|>user\nHow many? 42<|im_end|>\n<|im_start|>assistant\n", "call   <tool>   now", "x [NUM] y", "a <w> b",
    "<|endoftext|><|endoftext|>text"],
  llama3: ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi 12345<|eot_id|>"],
  llama2: ["<s>Hello</s> world", "see <image> here", "abc<image>def"],
  metaspace: ["see <image> here 2024"],
  metaspaceFirst: ["see <image> here", "abc<image>def"],
};

function record(name, json, config, extraTexts) {
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(json, null, 1));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 1));
  const tok = new Tokenizer(json, config);
  const cases = [...texts, ...extraTexts].map((text) => {
    const e = tok.encode(text, { add_special_tokens: false });
    const decoded = e.ids.length ? tok.decode(e.ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
    const skipped = e.ids.length ? tok.decode(e.ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }) : "";
    return { text, ids: e.ids, tokens: e.tokens, decoded, decoded_skip_special: skipped };
  });
  fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify({ reference: "@huggingface/tokenizers@0.2.0", cases }, null, 1));
  return dir;
}

const config = (cls, extra = {}) => ({ tokenizer_class: cls, clean_up_tokenization_spaces: false, ...extra });
const qwenConfig = config("Qwen2Tokenizer", { eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null,
  chat_template: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
  added_tokens_decoder: Object.fromEntries(qwenAdded.map((a) => [String(a.id), { content: a.content, lstrip: a.lstrip, normalized: a.normalized, rstrip: a.rstrip, single_word: a.single_word, special: a.special }])) });
const qwenDir = record("qwen2", qwen2, qwenConfig, withSpecial.qwen2);
record("llama3", llama3, config("PreTrainedTokenizerFast", { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" }), withSpecial.llama3);
record("llama2-fast", llama2, config("LlamaTokenizerFast", { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }), withSpecial.llama2);
record("digits-metaspace", metaspace, config("PreTrainedTokenizerFast"), withSpecial.metaspace);
record("metaspace-first", metaspaceFirst, config("LlamaTokenizerFast", { legacy: false }), withSpecial.metaspaceFirst);

// Qwen2's slow files from the same vocabulary: expected ids are the tokenizer.json ones
const slow = path.join(out, "qwen2-slow");
fs.mkdirSync(slow, { recursive: true });
fs.writeFileSync(path.join(slow, "vocab.json"), JSON.stringify(byteVocab));
fs.writeFileSync(path.join(slow, "merges.txt"), "#version: 0.2\n" + byteMerges.map(([a, b]) => `${a} ${b}`).join("\n") + "\n");
fs.writeFileSync(path.join(slow, "tokenizer_config.json"), JSON.stringify(qwenConfig, null, 1));
fs.copyFileSync(path.join(qwenDir, "expected.json"), path.join(slow, "expected.json"));
console.log(`wrote ${out}`);
