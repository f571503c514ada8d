// Renders every chat template GenRecal recognises (src/GenRecal/Tokenization/HfChatTemplates/*.jinja) with
// @huggingface/jinja for a few conversations, as transformers' apply_chat_template(tokenize=False) does, and writes
// tests/GenRecal.Tests/Fixtures/chat-templates/<name>.json with the template text and each rendered string.
// Only the path ChatTemplate reproduces is rendered: user/assistant turns, no system turn, no tools.
import fs from "node:fs";
import { Template } from "@huggingface/jinja";

const TEMPLATES = "../../src/GenRecal/Tokenization/HfChatTemplates";
const OUT = process.argv[2] ?? "../../tests/GenRecal.Tests/Fixtures/chat-templates";

// the special-token strings each family's tokenizer_config.json names
const TOKENS = {
  chatml: { eos_token: "<|im_end|>" },
  qwen: { eos_token: "<|im_end|>" },
  llama3: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
};
const FAMILY = {
  "chatml": "chatml", "chatml-escaped": "chatml", "qwen2-instruct": "qwen", "qwen2.5-instruct": "qwen",
  "qwen2.5-instruct-doubled-braces": "qwen", "llama3-instruct": "llama3", "llama3.1-instruct": "llama3",
};

const CASES = [
  { name: "one user turn, generation prompt", add_generation_prompt: true,
    messages: [{ role: "user", content: "What is 2+2?" }] },
  { name: "user/assistant/user, generation prompt", add_generation_prompt: true,
    messages: [{ role: "user", content: "Hello, how are you?" }, { role: "assistant", content: "I'm fine, thanks.\nAnd you?" },
               { role: "user", content: "Name three colours, one per line:\n" }] },
  { name: "user/assistant, no generation prompt (a training example)", add_generation_prompt: false,
    messages: [{ role: "user", content: "Translate 'chat' to French." }, { role: "assistant", content: "« chat » — 猫 in Japanese." }] },
];

fs.mkdirSync(OUT, { recursive: true });
for (const file of fs.readdirSync(TEMPLATES).filter(f => f.endsWith(".jinja")).sort()) {
  const name = file.slice(0, -".jinja".length);
  const text = fs.readFileSync(`${TEMPLATES}/${file}`, "utf8");
  const tokens = TOKENS[FAMILY[name] ?? (() => { throw new Error(`no tokens for ${name}`); })()];
  const template = new Template(text);
  const cases = CASES.map(c => ({ ...c, rendered: template.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt, ...tokens }) }));
  const json = { renderer: "@huggingface/jinja 0.5.11", template: text, ...tokens, cases };
  fs.writeFileSync(`${OUT}/${name}.json`, JSON.stringify(json, null, 2) + "\n");
  console.log(`${name}: ${JSON.stringify(cases[0].rendered)}`);
}
