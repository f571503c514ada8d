// Tokenize / detokenize with tokenizers.js (@huggingface/tokenizers 0.2.0, a pure-JS port of HF
// `tokenizers`) and render chat templates with @huggingface/jinja 0.5.11 (the JS Jinja engine the HF hub
// uses).  Shared by the InternVL, InternVL -hf and Qwen2-VL reference generators.
//
// Usage:
//   node tokenize.mjs <tokenizer_dir> <requests.json> [<out.json>]
// requests.json: [{"op": "encode", "text": "..."},
//                 {"op": "decode", "ids": [..], "skip_special_tokens": false},
//                 {"op": "token_to_id", "token": "<IMG_CONTEXT>"},
//                 {"op": "apply_chat_template", "template": "<jinja source>", "messages": [...],
//                  "add_generation_prompt": true, "kwargs": {...extra template variables...}}, ...]
// Writes (or prints) a JSON array of results in the same order:
//   encode              -> {"text", "ids", "tokens"}
//   decode              -> {"ids", "skip_special_tokens", "text"}
//   token_to_id         -> {"token", "id"}
//   apply_chat_template -> {"text"}
// The tokenizer (tokenizer.json + tokenizer_config.json in <tokenizer_dir>) is loaded on the first
// encode/decode/token_to_id request.  Encoding uses add_special_tokens=true, which for a Qwen2
// tokenizer.json adds nothing (its post_processor is ByteLevel only) -- same as HF `tokenizer(text)`.
// transformers renders templates with jinja2 (trim_blocks=True, lstrip_blocks=True); the InternVL -hf
// template has no text outside {{ }} / {% %} tags, so those flags cannot change its output.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

const [dir, reqPath, outPath] = process.argv.slice(2);
if (!dir || !reqPath) {
  console.error("usage: node tokenize.mjs <tokenizer_dir> <requests.json> [<out.json>]");
  process.exit(2);
}
const requests = JSON.parse(readFileSync(reqPath, "utf8"));
let tok = null;
function tokenizer() {
  if (!tok) {
    const tokJson = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    const tokCfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    tok = new Tokenizer(tokJson, tokCfg);
  }
  return tok;
}

const results = requests.map((r) => {
  switch (r.op) {
    case "encode": {
      const enc = tokenizer().encode(r.text, { add_special_tokens: true });
      return { text: r.text, ids: enc.ids, tokens: enc.tokens };
    }
    case "decode": {
      const skip = !!r.skip_special_tokens;
      return { ids: r.ids, skip_special_tokens: skip, text: tokenizer().decode(r.ids, { skip_special_tokens: skip }) };
    }
    case "token_to_id":
      return { token: r.token, id: tokenizer().token_to_id(r.token) ?? null };
    case "apply_chat_template": {
      const t = new Template(r.template);
      const text = t.render({ ...(r.kwargs || {}), messages: r.messages, add_generation_prompt: !!r.add_generation_prompt });
      return { text };
    }
    default:
      throw new Error(`unknown op ${r.op}`);
  }
});

const out = JSON.stringify(results);
if (outPath) writeFileSync(outPath, out);
else process.stdout.write(out + "\n");
