// Render a chat template with @huggingface/jinja (the JS port of the Jinja subset HF uses
// for chat templates), the way HF `apply_chat_template(messages, tokenize=False,
// add_generation_prompt=True)` calls it.
//
// Usage:
//   node render_template.mjs <chat_template.json> <requests.json> [<out.json>]
// requests.json: [{"messages": [...], "add_generation_prompt": true, "extra": {...}}, ...]
// Writes (or prints) a JSON array of rendered strings in the same order.
// The context also carries the tokenizer's special-token strings, as HF passes them
// (bos_token null, eos_token "<|im_end|>", pad_token "<|endoftext|>", unk_token null);
// the Qwen2-VL template does not use them.
import { readFileSync, writeFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const [tplPath, reqPath, outPath] = process.argv.slice(2);
if (!tplPath || !reqPath) {
  console.error("usage: node render_template.mjs <chat_template.json> <requests.json> [<out.json>]");
  process.exit(2);
}
const source = JSON.parse(readFileSync(tplPath, "utf8")).chat_template;
const template = new Template(source);
const requests = JSON.parse(readFileSync(reqPath, "utf8"));
const results = requests.map((r) =>
  template.render({
    messages: r.messages,
    add_generation_prompt: r.add_generation_prompt ?? true,
    bos_token: null,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    unk_token: null,
    ...(r.extra ?? {}),
  }),
);
const out = JSON.stringify(results);
if (outPath) writeFileSync(outPath, out);
else process.stdout.write(out + "\n");
