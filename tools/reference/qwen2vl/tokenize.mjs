// Tokenize / detokenize with tokenizers.js (@huggingface/tokenizers, a pure-JS
// port of HF `tokenizers`), loading a tokenizer.json + tokenizer_config.json pair.
//
// Usage:
//   node tokenize.mjs <tokenizer_dir> <requests.json> [<out.json>]
// requests.json: [{"op": "encode", "text": "..."},
//                 {"op": "decode", "ids": [..], "skip_special_tokens": false},
//                 {"op": "token_to_id", "token": "<|image_pad|>"}, ...]
// Writes (or prints) a JSON array of results in the same order:
//   encode      -> {"text", "ids", "tokens"}
//   decode      -> {"ids", "skip_special_tokens", "text"}
//   token_to_id -> {"token", "id"}
// Encoding uses add_special_tokens=true, which for a Qwen2 tokenizer.json adds
// nothing (its post_processor is ByteLevel only) -- same as HF `tokenizer(query)`.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, reqPath, outPath] = process.argv.slice(2);
if (!dir || !reqPath) {
  console.error("usage: node tokenize.mjs <tokenizer_dir> <requests.json> [<out.json>]");
  process.exit(2);
}
const tokJson = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
const tokCfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
const tok = new Tokenizer(tokJson, tokCfg);
const requests = JSON.parse(readFileSync(reqPath, "utf8"));

const results = requests.map((r) => {
  switch (r.op) {
    case "encode": {
      const enc = tok.encode(r.text, { add_special_tokens: true });
      return { text: r.text, ids: enc.ids, tokens: enc.tokens };
    }
    case "decode": {
      const skip = !!r.skip_special_tokens;
      return {
        ids: r.ids,
        skip_special_tokens: skip,
        text: tok.decode(r.ids, { skip_special_tokens: skip }),
      };
    }
    case "token_to_id":
      return { token: r.token, id: tok.token_to_id(r.token) ?? null };
    default:
      throw new Error(`unknown op ${r.op}`);
  }
});

const out = JSON.stringify(results);
if (outPath) writeFileSync(outPath, out);
else process.stdout.write(out + "\n");
