using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Models.Families.InternVL;

/// <summary>
/// InternVL2.5 / InternVL3 in OpenGVLab's original format (InternVLChatModel, model_type internvl_chat): InternViT
/// (class token, layer scale, optional qk-norm and RMS norms), pixel shuffle, mlp1, and a Qwen2 or LLaMA LM under
/// language_model.*. config.json nests vision_config and llm_config; absent keys take the defaults of InternVL's own
/// config classes. Images are tiled dynamically; the image-context token id is the tokenizer's &lt;IMG_CONTEXT&gt;, as
/// InternVL's chat() takes it.
/// </summary>
internal sealed class InternVlFamily : ModelFamily
{
    internal static readonly InternVlFamily Instance = new();

    public override string Name => "internvl_chat";
    public override string Covers => "InternVL2.5 / InternVL3 original format, InternVLChatModel with a Qwen2 or LLaMA language model";

    internal override bool Reads(ConfigJson config) =>
        config.Optional<string>("model_type") == "internvl_chat"
        || (config.Json["architectures"] is JsonArray a && a.Any(n => n is JsonValue v && v.TryGetValue<string>(out var s) && s == "InternVLChatModel"));

    internal override ModelConfig ReadConfig(ConfigJson j)
    {
        var llm = j.Section("llm_config") ?? throw new InvalidDataException($"{j.File}: missing 'llm_config'");
        if (llm.Json["architectures"] is JsonArray archs && archs.Any(a => a?.ToString() is "Phi3ForCausalLM"))
            throw llm.Invalid("architectures", $"is {ConfigJson.Show(archs)}; supported language models: Qwen2ForCausalLM, LlamaForCausalLM, InternLM2ForCausalLM");
        var text = LanguageModelConfig.Read(llm, internLm2: true);
        var vc = j.Section("vision_config") ?? throw new InvalidDataException($"{j.File}: missing 'vision_config'");
        if (vc.Optional<string>("hidden_act") is { } act && act != "gelu") throw vc.Invalid("hidden_act", $"is '{act}'; only gelu is implemented");
        int imageSize = vc.Optional("image_size", 224);
        var vision = new VisionConfig
        {
            // defaults: InternVisionConfig (configuration_intern_vit.py)
            ImageSize = imageSize,
            PatchSize = vc.Optional("patch_size", 14),
            NumChannels = vc.Optional("num_channels", 3),
            HiddenSize = vc.Optional("hidden_size", 3200),
            IntermediateSize = vc.Optional("intermediate_size", 12800),
            NumHiddenLayers = vc.Optional("num_hidden_layers", 48),
            NumAttentionHeads = vc.Optional("num_attention_heads", 25),
            LayerNormEps = vc.Optional("layer_norm_eps", 1e-6),
            QkvBias = vc.Optional("qkv_bias", false),
            QkNormalization = vc.Optional("qk_normalization", true),
            NormType = vc.Optional<string>("norm_type") ?? "rms_norm",
            ClassToken = true,
            LayerScale = true,
            // defaults: InternVLChatConfig (configuration_internvl_chat.py)
            DownsampleRatio = j.Optional("downsample_ratio", 0.5),
            SelectLayer = j.Optional("select_layer", -1),
            PixelShuffleVersion = j.Optional<string>("ps_version") ?? "v1",
            InputSize = j.Optional<int?>("force_image_size") ?? imageSize,
        };
        vision.Validate(j.File);
        var tiling = j.Optional("dynamic_image_size", false)
            ? new ImageTiling(j.Optional("min_dynamic_patch", 1), j.Optional("max_dynamic_patch", 6), j.Optional("use_thumbnail", false))
            : null;
        if (tiling is { } t && (t.MinTiles < 1 || t.MaxTiles < t.MinTiles))
            throw j.Invalid("max_dynamic_patch", $"must be at least min_dynamic_patch ≥ 1, found min {t.MinTiles}, max {t.MaxTiles}");
        string template = j.Optional<string>("template") ?? throw new InvalidDataException($"{j.File}: missing 'template' (the conversation template InternVL's chat() uses)");
        InternVlTemplates.For(template, j.File);
        return new ModelConfig(text, vision, null) { Family = this, Tiling = tiling, TemplateName = template, Source = j.Json.DeepClone().AsObject() };
    }

    /// <summary>A new InternVL config (for models built here, e.g. tests and students made from scratch), written with the
    /// key names and structure of InternVL's own config.json and read back through <see cref="ReadConfig"/>.</summary>
    internal ModelConfig NewConfig(LanguageModelConfig text, VisionConfig vision, ImageTiling? tiling, string template = "internvl2_5")
    {
        var llm = new JsonObject();
        text.WriteTo(llm);
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("InternVLChatModel"), ["model_type"] = Name, ["template"] = template,
            ["downsample_ratio"] = vision.DownsampleRatio, ["ps_version"] = vision.PixelShuffleVersion, ["select_layer"] = vision.SelectLayer,
            ["force_image_size"] = vision.TileSize, ["dynamic_image_size"] = tiling is not null, ["use_thumbnail"] = tiling?.Thumbnail ?? false,
            ["min_dynamic_patch"] = tiling?.MinTiles ?? 1, ["max_dynamic_patch"] = tiling?.MaxTiles ?? 1, ["torch_dtype"] = "float32",
            ["llm_config"] = llm,
            ["vision_config"] = new JsonObject
            {
                ["architectures"] = new JsonArray("InternVisionModel"), ["model_type"] = "intern_vit_6b",
                ["image_size"] = vision.ImageSize, ["patch_size"] = vision.PatchSize, ["num_channels"] = vision.NumChannels,
                ["hidden_size"] = vision.HiddenSize, ["intermediate_size"] = vision.IntermediateSize,
                ["num_hidden_layers"] = vision.NumHiddenLayers, ["num_attention_heads"] = vision.NumAttentionHeads,
                ["qkv_bias"] = vision.QkvBias, ["qk_normalization"] = vision.QkNormalization, ["norm_type"] = vision.NormType,
                ["layer_norm_eps"] = vision.LayerNormEps, ["hidden_act"] = "gelu", ["drop_path_rate"] = 0.0,
            },
        };
        return ReadConfig(new ConfigJson(json, "(new InternVL config)"));
    }

    public override JsonObject WriteConfig(ModelConfig config) => SourceAsSaved(config, "llm_config");

    /// <summary>InternLM2's names for our LLaMA-style parameters (modeling_internlm2.py); q/k/v stand for the three parts
    /// of the packed attention.wqkv, which <see cref="FromFiles"/> splits and <see cref="ToFiles"/> packs.</summary>
    static readonly (string Ours, string Theirs)[] InternLm2Names =
    [
        ("model.embed_tokens.", "model.tok_embeddings."), (".self_attn.q_proj.", ".attention.wq."), (".self_attn.k_proj.", ".attention.wk."),
        (".self_attn.v_proj.", ".attention.wv."), (".self_attn.o_proj.", ".attention.wo."), (".mlp.gate_proj.", ".feed_forward.w1."),
        (".mlp.up_proj.", ".feed_forward.w3."), (".mlp.down_proj.", ".feed_forward.w2."), (".input_layernorm.", ".attention_norm."),
        (".post_attention_layernorm.", ".ffn_norm."), ("lm_head.", "output."),
    ];

    static bool IsInternLm2(ModelConfig c) => c.Text.ModelType == "internlm2";

    public override string CheckpointKey(string parameterName, ModelConfig config)
    {
        var key = CheckpointKey(parameterName);
        if (!IsInternLm2(config) || !key.StartsWith("language_model.", StringComparison.Ordinal)) return key;
        foreach (var (ours, theirs) in InternLm2Names) key = key.Replace(ours, theirs);
        return key;
    }

    /// <summary>InternLM2's wqkv rows: per key/value head, its group of query heads, then its key, then its value
    /// ((h gs d) with gs = heads / kv heads + 2, modeling_internlm2.py).</summary>
    public override void FromFiles(ModelConfig config, Dictionary<string, Tensor> tensors, Dictionary<string, string> files)
    {
        if (!IsInternLm2(config)) return;
        var t = config.Text;
        int groups = t.NumAttentionHeads / t.NumKeyValueHeads, d = t.HeadDim;
        foreach (var key in tensors.Keys.Where(k => k.Contains(".attention.wqkv.")).ToList())
        {
            var w = tensors[key];
            var g = w.reshape(t.NumKeyValueHeads, groups + 2, d, -1);                 // [kv, G+2, d, in] (in = 1 for a bias)
            var parts = new[]
            {
                ("wq", g.narrow(1, 0, groups)), ("wk", g.narrow(1, groups, 1)), ("wv", g.narrow(1, groups + 1, 1)),
            };
            foreach (var (name, part) in parts)
            {
                var k = key.Replace(".wqkv.", $".{name}.");
                var flat = part.reshape(-1, g.shape[3]);
                tensors[k] = w.dim() == 1 ? flat.reshape(-1).contiguous() : flat.contiguous();
                files[k] = files[key];
            }
            w.Dispose();
            tensors.Remove(key);
        }
    }

    public override Dictionary<string, Tensor> ToFiles(ModelConfig config, Dictionary<string, Tensor> tensors)
    {
        if (!IsInternLm2(config)) return tensors;
        var t = config.Text;
        int groups = t.NumAttentionHeads / t.NumKeyValueHeads, d = t.HeadDim;
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, w) in tensors)
        {
            if (name.Contains(".attention.wk.") || name.Contains(".attention.wv.")) continue;
            if (!name.Contains(".attention.wq.")) { result[name] = w; continue; }
            Tensor Grouped(Tensor x, int heads) => x.reshape(t.NumKeyValueHeads, heads, d, -1);
            var packed = cat([Grouped(w, groups), Grouped(tensors[name.Replace(".wq.", ".wk.")], 1), Grouped(tensors[name.Replace(".wq.", ".wv.")], 1)], 1);
            result[name.Replace(".wq.", ".wqkv.")] = w.dim() == 1 ? packed.reshape(-1) : packed.reshape(-1, w.shape[1]);
        }
        return result;
    }

    public override string CheckpointKey(string parameterName) =>
        parameterName.StartsWith("model.", StringComparison.Ordinal) || parameterName.StartsWith("lm_head.", StringComparison.Ordinal)
            ? "language_model." + parameterName
            : parameterName;

    public override ModelTokenizer LoadTokenizer(string dir, ModelConfig config)
    {
        var template = InternVlTemplates.For(config.TemplateName, Path.Combine(dir, ModelConfig.FileName));
        // chat() calls tokenizer(query): a tokenizer with add_bos_token (InternLM2Tokenizer, LlamaTokenizer) puts BOS first
        var tokConfig = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(tokConfig) && ConfigJson.Parse(tokConfig) is var tc && tc.Optional<bool?>("add_bos_token") == true)
        {
            string bos = tc.Optional<string>("bos_token") ?? (tc.Section("bos_token")?.Optional<string>("content"))
                ?? throw tc.Invalid("bos_token", "is missing, but add_bos_token is true");
            template = template with { SystemPrefix = bos + template.SystemPrefix };
        }
        return TokenizerWith(dir, template, $"template '{config.TemplateName}'");
    }

    public override int ImageTokens(int width, int height, ModelConfig config) =>
        (config.Tiling is { } t ? DynamicTiling.Count(width, height, t, config.Vision!.TileSize) : 1) * config.Vision!.NumImageTokens;

    public override ImageInput LoadImage(string path, ModelConfig config) => LoadTiles(path, config);

    /// <summary>load_image: the tiles (dynamic tiling, or one tile) as [tiles, 3, S, S] — shared with the -hf layout,
    /// whose GotOcr2 processor cuts and resizes the same way.</summary>
    internal static ImageInput LoadTiles(string path, ModelConfig config)
    {
        var v = config.Vision!;
        var (rgb, w, h) = ImagePreprocessor.DecodeRgb(path);
        var tiles = config.Tiling is { } t ? DynamicTiling.Cut(rgb, w, h, t, v.TileSize) : [PilResize.Bicubic(rgb, w, h, v.TileSize, v.TileSize)];
        return new(stack(tiles.Select(tile => ImagePreprocessor.Normalize(tile, v.TileSize, v)).ToArray()), null); // [tiles, 3, S, S]
    }

    public override string ImageRule(ModelConfig config)
    {
        var v = config.Vision!;
        string tiles = config.Tiling is { } t
            ? $"{t.MinTiles}-{t.MaxTiles} tiles of {v.TileSize}px by aspect ratio{(t.Thumbnail ? " + a thumbnail" : "")}"
            : $"one {v.TileSize}px tile";
        return $"{tiles} (PIL bicubic), patch {v.PatchSize}, pixel shuffle x{v.ShuffleFactor} ({v.PixelShuffleVersion}) → {v.NumImageTokens} tokens per tile, " +
               $"in <img>…</img>; encoder layer {v.SelectLayer}";
    }
}
