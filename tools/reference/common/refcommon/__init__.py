"""Infrastructure shared by the independent reference generators under tools/reference/.

Nothing here follows a particular model family's code; each family's modeling code stays in its own
folder (internvl/, internvl-hf/, qwen2vl/).  Modules:

  * safetensors_io  -- hand-written .safetensors reader/writer (no `safetensors` package), bits_equal
  * ops             -- small tensor building blocks (RMSNorm, LayerNorm, rotate_half, exact GELU) and the
                       Qwen2/Llama-style decoder-layer stack that the three language models share
  * bpe             -- the small Qwen2-style byte-level BPE: trainer, independent Python encoder/decoder
  * tokenizer_files -- tokenizer.json / tokenizer_config.json / special_tokens_map.json building blocks
  * fixtures        -- fixture scaffolding: paths, JSON writing, node (tokenize.mjs / render_template.mjs)
                       calls, self-check printing, seeded weight generator, test-image shapes

Import it from a family script with (path relative to the script, so it works from any directory):

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'common'))
"""
