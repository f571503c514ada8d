using System.Text.Json.Nodes;
using GenRecal.Models.Families.InternVL;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Models.Families.InternVLHf;

/// <summary>
/// InternVL in transformers' own layout (InternVLForConditionalGeneration, model_type internvl, the "-hf" checkpoints):
/// the same network as the original format with transformers' names — model.vision_tower.* (separate q/k/v projections,
/// lambda_1/2 layer scales, layernorm_before/after), model.multi_modal_projector.*, model.language_model.*, lm_head.* —
/// text_config / vision_config, the GotOcr2 image processor (preprocessor_config.json: tile size and min/max patches;
/// the InternVL processor always crops to patches and adds a thumbnail), image_seq_length tokens per tile
/// (processor_config.json), and the conversion script's chat template (no system message). Checkpoints saved by the
/// earlier conversion (vision_tower.*, multi_modal_projector.*, language_model.model.*, language_model.lm_head.*) load too,
/// as transformers' _checkpoint_conversion_mapping loads them.
/// </summary>
internal sealed class InternVlHfFamily : ModelFamily
{
    internal static readonly InternVlHfFamily Instance = new();
    const string Vision = "model.vision_tower.", Projector = "model.multi_modal_projector.", Text = "model.language_model.";

    public override string Name => "internvl";
    public override string Covers => "InternVL2.5 / InternVL3 -hf checkpoints (InternVLForConditionalGeneration) with a Qwen2 or LLaMA language model";

    internal override bool Reads(ConfigJson config) => config.Optional<string>("model_type") == "internvl";

    internal override ModelConfig ReadConfig(ConfigJson j) => throw new InvalidOperationException("an -hf config is read with its directory");

    internal override ModelConfig ReadConfig(ConfigJson j, string dir)
    {
        var tc = j.Section("text_config") ?? throw new InvalidDataException($"{j.File}: missing 'text_config'");
        var text = LanguageModelConfig.Read(tc);
        var vc = j.Section("vision_config") ?? throw new InvalidDataException($"{j.File}: missing 'vision_config'");
        if (vc.Optional<string>("hidden_act") is { } act && act != "gelu") throw vc.Invalid("hidden_act", $"is '{act}'; only gelu is implemented");
        if (j.Optional<string>("projector_hidden_act") is { } pact && pact != "gelu") throw j.Invalid("projector_hidden_act", $"is '{pact}'; only gelu is implemented");
        if ((j.Optional<string>("vision_feature_select_strategy") ?? "default") != "default")
            throw j.Invalid("vision_feature_select_strategy", "must be 'default' (the class token dropped before the pixel shuffle)");
        if (vc.Optional<bool?>("use_mask_token") == true) throw vc.Invalid("use_mask_token", "is true; mask tokens are not implemented");
        if (vc.Optional<bool?>("use_absolute_position_embeddings") == false) throw vc.Invalid("use_absolute_position_embeddings", "is false; only absolute position embeddings are implemented");
        int Square(string key, int fallback)
        {
            if (vc.Json[key] is JsonArray a)
            {
                var v = a.Select(n => (int)n!).ToArray();
                if (v.Length != 2 || v[0] != v[1]) throw vc.Invalid(key, $"is {ConfigJson.Show(a)}; only square sizes are implemented");
                return v[0];
            }
            return vc.Optional(key, fallback);
        }
        int imageSize = Square("image_size", 448);
        var vision = new VisionConfig
        {
            // defaults: InternVLVisionConfig (configuration_internvl.py)
            ImageSize = imageSize, PatchSize = Square("patch_size", 14), NumChannels = vc.Optional("num_channels", 3),
            HiddenSize = vc.Optional("hidden_size", 1024), IntermediateSize = vc.Optional("intermediate_size", 4096),
            NumHiddenLayers = vc.Optional("num_hidden_layers", 24), NumAttentionHeads = vc.Optional("num_attention_heads", 16),
            LayerNormEps = vc.Optional("layer_norm_eps", 1e-6), QkvBias = vc.Optional("attention_bias", false),
            QkNormalization = vc.Optional("use_qk_norm", false), NormType = vc.Optional<string>("norm_type") ?? "layer_norm",
            ClassToken = true, LayerScale = true, PixelShuffleVersion = "v2",
            DownsampleRatio = j.Optional("downsample_ratio", 0.5), SelectLayer = j.Optional("vision_feature_layer", -1),
        };
        var (tile, tiling, mean, std) = ReadProcessor(dir);
        vision = vision with { InputSize = tile, ImageMean = mean, ImageStd = std };
        vision.Validate(j.File);
        var processor = Path.Combine(dir, "processor_config.json");
        int seq = File.Exists(processor) ? ConfigJson.Parse(processor).Optional<int?>("image_seq_length") ?? j.Optional("image_seq_length", 256) : j.Optional("image_seq_length", 256);
        if (seq != vision.NumImageTokens)
            throw new InvalidDataException($"{processor}: image_seq_length {seq} differs from the {vision.NumImageTokens} tokens a {tile}px tile gives (patch {vision.PatchSize}, downsample {vision.DownsampleRatio})");
        return new ModelConfig(text, vision, j.Optional<int?>("image_token_id") ?? 151667)
            { Family = this, Tiling = tiling, TemplateName = "internvl-hf", Source = j.Json.DeepClone().AsObject() };
    }

    /// <summary>preprocessor_config.json (GotOcr2ImageProcessor): tile size, patch bounds, mean and std. The InternVL
    /// processor passes crop_to_patches = true whatever the file says, and GotOcr2 adds a thumbnail to a grid of several.</summary>
    static (int Tile, ImageTiling Tiling, double[] Mean, double[] Std) ReadProcessor(string dir)
    {
        var path = Path.Combine(dir, "preprocessor_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: missing (the -hf image processor's settings)", path);
        var p = ConfigJson.Parse(path);
        var size = p.Section("size") ?? throw new InvalidDataException($"{path}: missing 'size'");
        int h = size.Required<int>("height"), w = size.Required<int>("width");
        if (h != w) throw size.Invalid("height", $"is {h} but width is {w}; only square tiles are implemented");
        if (p.Optional<int?>("resample") is { } r && r != 3) throw p.Invalid("resample", $"is {r}; only 3 (bicubic) is implemented");
        var tiling = new ImageTiling(p.Optional("min_patches", 1), p.Optional("max_patches", 12), true);
        if (tiling.MinTiles < 1 || tiling.MaxTiles < tiling.MinTiles) throw p.Invalid("max_patches", $"must be at least min_patches ≥ 1, found {tiling.MinTiles}..{tiling.MaxTiles}");
        return (h, tiling, p.DoubleArray("image_mean", [0.485, 0.456, 0.406]), p.DoubleArray("image_std", [0.229, 0.224, 0.225]));
    }

    public override IReadOnlyList<string> CompanionFiles =>
        ["preprocessor_config.json", "processor_config.json", "chat_template.jinja", "chat_template.json", "generation_config.json"];

    public override JsonObject WriteConfig(ModelConfig config) => SourceAsSaved(config, "text_config");

    /// <summary>Our names → transformers' (the fused attn.qkv stays one name here; <see cref="ToFiles"/> splits it).</summary>
    public override string CheckpointKey(string p)
    {
        if (p.StartsWith("model.", StringComparison.Ordinal)) return Text + p["model.".Length..];
        if (p.StartsWith("lm_head.", StringComparison.Ordinal)) return p;
        if (p.StartsWith("mlp1.", StringComparison.Ordinal))
        {
            var rest = p["mlp1.".Length..];
            int dot = rest.IndexOf('.');
            return Projector + rest[..dot] switch { "0" => "layer_norm", "1" => "linear_1", "3" => "linear_2", var other => other } + rest[dot..];
        }
        var v = p["vision_model.".Length..]
            .Replace("embeddings.class_embedding", "embeddings.cls_token")
            .Replace("embeddings.patch_embedding.", "embeddings.patch_embeddings.projection.")
            .Replace("embeddings.position_embedding", "embeddings.position_embeddings")
            .Replace("encoder.layers.", "encoder.layer.")
            .Replace(".attn.proj.", ".attention.projection_layer.")
            .Replace(".attn.", ".attention.")
            .Replace(".norm1.", ".layernorm_before.").Replace(".norm2.", ".layernorm_after.")
            .Replace(".ls1", ".lambda_1").Replace(".ls2", ".lambda_2");
        return Vision + v;
    }

    static readonly (string Old, string New)[] EarlierPrefixes =
        [("vision_tower.", Vision), ("multi_modal_projector.", Projector), ("language_model.model.", Text), ("language_model.lm_head.", "lm_head.")];

    public override void FromFiles(ModelConfig config, Dictionary<string, Tensor> tensors, Dictionary<string, string> files)
    {
        foreach (var key in tensors.Keys.ToList())
            foreach (var (old, now) in EarlierPrefixes)
                if (key.StartsWith(old, StringComparison.Ordinal))
                {
                    Rename(tensors, files, key, now + key[old.Length..]);
                    break;
                }
        foreach (var q in tensors.Keys.Where(k => k.StartsWith(Vision, StringComparison.Ordinal) && k.Contains(".attention.q_proj.")).ToList())
        {
            string k = q.Replace(".q_proj.", ".k_proj."), v = q.Replace(".q_proj.", ".v_proj."), fused = q.Replace(".q_proj.", ".qkv.");
            if (!tensors.ContainsKey(k) || !tensors.ContainsKey(v)) continue; // the strict load names the missing parts
            tensors[fused] = cat([tensors[q], tensors[k], tensors[v]], 0);
            files[fused] = files[q];
            foreach (var part in new[] { q, k, v })
            {
                tensors[part].Dispose();
                tensors.Remove(part);
            }
        }
    }

    static void Rename(Dictionary<string, Tensor> tensors, Dictionary<string, string> files, string from, string to)
    {
        tensors[to] = tensors[from];
        files[to] = files[from];
        tensors.Remove(from);
    }

    public override Dictionary<string, Tensor> ToFiles(ModelConfig config, Dictionary<string, Tensor> tensors)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, t) in tensors)
        {
            if (!name.Contains(".attention.qkv."))
            {
                result[name] = t;
                continue;
            }
            long d = t.shape[0] / 3; // InternViT's qkv rows: q, then k, then v
            result[name.Replace(".qkv.", ".q_proj.")] = t.narrow(0, 0, d);
            result[name.Replace(".qkv.", ".k_proj.")] = t.narrow(0, d, d);
            result[name.Replace(".qkv.", ".v_proj.")] = t.narrow(0, 2 * d, d);
        }
        return result;
    }

    /// <summary>The conversion script's chat template, as the processor expands its image token: ChatML with no default
    /// system message, the image as &lt;img&gt;&lt;IMG_CONTEXT&gt;×N&lt;/img&gt; on its own line before the text.</summary>
    internal static readonly ChatTemplate Template = new()
    {
        UserPrefix = "<|im_start|>user\n", AssistantPrefix = "<|im_start|>assistant\n", EndOfTurn = "<|im_end|>", TurnSeparator = "\n",
        ImagePlaceholder = "<image>", ImageStart = "<img>", ImageContext = "<IMG_CONTEXT>", ImageEnd = "</img>", ImageSeparator = "\n",
    };

    public override ModelTokenizer LoadTokenizer(string dir, ModelConfig config) => TokenizerWith(dir, Template, "InternVL's -hf processor");

    public override int ImageTokens(int width, int height, ModelConfig config) =>
        DynamicTiling.Count(width, height, config.Tiling!, config.Vision!.TileSize) * config.Vision.NumImageTokens;

    public override ImageInput LoadImage(string path, ModelConfig config) => InternVlFamily.LoadTiles(path, config);

    public override string ImageRule(ModelConfig config) => InternVlFamily.Instance.ImageRule(config);
}
