using System.Text.Json.Nodes;
using GenRecal.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Models.Families.Qwen2VL;

/// <summary>
/// Qwen2-VL and Qwen2.5-VL as the hub ships them (Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration):
/// visual.* (encoder, visual.merger.*), the Qwen2 LM with M-RoPE under model.*, lm_head.*. config.json has the text keys at
/// the top level (or in text_config, as newer transformers write it) and a vision_config; preprocessor_config.json has
/// the processor's pixel bounds. Images become a patch sequence of any size (smart_resize), each image
/// grid_t·grid_h·grid_w / merge² &lt;|image_pad|&gt; tokens between &lt;|vision_start|&gt; and &lt;|vision_end|&gt;.
/// </summary>
internal sealed class Qwen2VlFamily : ModelFamily
{
    internal static readonly Qwen2VlFamily Instance = new();
    public const string ProcessorFileName = "preprocessor_config.json";

    public override string Name => "qwen2_vl";
    public override string Covers => "Qwen2-VL and Qwen2.5-VL (model_type qwen2_vl, qwen2_5_vl)";

    internal override bool Reads(ConfigJson config) => config.Optional<string>("model_type") is "qwen2_vl" or "qwen2_5_vl";

    internal override ModelConfig ReadConfig(ConfigJson j)
    {
        bool v25 = j.Optional<string>("model_type") == "qwen2_5_vl";
        var text = LanguageModelConfig.Read(j.Section("text_config") ?? j, mrope: true);
        var vc = j.Section("vision_config") ?? throw new InvalidDataException($"{j.File}: missing 'vision_config'");
        int Id(string key) => j.Optional<int?>(key) ?? j.Section("text_config")?.Optional<int?>(key)
            ?? throw new InvalidDataException($"{j.File}: missing '{key}'");
        var s = v25
            ? new Qwen2VlSettings
            {
                // defaults: Qwen2_5_VLVisionConfig
                Version25 = true,
                Depth = vc.Optional("depth", 32), Width = vc.Optional("hidden_size", 3584), Heads = vc.Optional("num_heads", 16),
                MlpHidden = vc.Optional("intermediate_size", 3420), OutWidth = vc.Optional("out_hidden_size", 3584),
                HiddenAct = vc.Optional<string>("hidden_act") ?? "silu",
                WindowSize = vc.Optional("window_size", 112),
                FullAttentionBlocks = vc.Json["fullatt_block_indexes"] is JsonArray a ? a.Select(n => (int)n!).ToArray() : [7, 15, 23, 31],
            }
            : new Qwen2VlSettings
            {
                // defaults: Qwen2VLVisionConfig
                Depth = vc.Optional("depth", 32), Width = vc.Optional("embed_dim", 1280), Heads = vc.Optional("num_heads", 16),
                MlpHidden = (int)(vc.Optional("embed_dim", 1280) * vc.Optional("mlp_ratio", 4.0)), OutWidth = vc.Optional("hidden_size", 3584),
                HiddenAct = vc.Optional<string>("hidden_act") ?? "quick_gelu",
            };
        s = s with
        {
            InChannels = vc.Optional<int?>("in_channels") ?? vc.Optional("in_chans", 3),
            PatchSize = vc.Optional("patch_size", 14), TemporalPatchSize = vc.Optional("temporal_patch_size", 2),
            MergeSize = vc.Optional("spatial_merge_size", 2),
            VisionStartTokenId = Id("vision_start_token_id"), VisionEndTokenId = Id("vision_end_token_id"),
        };
        if (s.HiddenAct != (v25 ? "silu" : "quick_gelu"))
            throw vc.Invalid("hidden_act", $"is '{s.HiddenAct}'; implemented: {(v25 ? "silu" : "quick_gelu")}");
        if (s.OutWidth != text.HiddenSize)
            throw vc.Invalid(v25 ? "out_hidden_size" : "hidden_size", $"is {s.OutWidth} but the language model's hidden_size is {text.HiddenSize}");
        if (s.Width % s.Heads != 0 || s.Width / s.Heads % 4 != 0)
            throw vc.Invalid("num_heads", $"must divide the encoder width {s.Width} into heads whose size is a multiple of 4");
        return new ModelConfig(text, null, Id("image_token_id")) { Family = this, Settings = s, Source = j.Json.DeepClone().AsObject() };
    }

    internal override ModelConfig ReadConfig(ConfigJson j, string dir) => WithProcessor(ReadConfig(j), dir);

    /// <summary>Reads preprocessor_config.json's pixel bounds into the settings (newer files write them as size.shortest_edge /
    /// size.longest_edge).</summary>
    internal static ModelConfig WithProcessor(ModelConfig config, string dir)
    {
        var path = Path.Combine(dir, ProcessorFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: missing (Qwen2-VL's image processor settings)", path);
        var p = ConfigJson.Parse(path);
        var s = (Qwen2VlSettings)config.Settings!;
        var size = p.Section("size");
        s = s with
        {
            MinPixels = p.Optional<int?>("min_pixels") ?? size?.Optional<int?>("shortest_edge") ?? s.MinPixels,
            MaxPixels = p.Optional<int?>("max_pixels") ?? size?.Optional<int?>("longest_edge") ?? s.MaxPixels,
            ImageMean = p.DoubleArray("image_mean", s.ImageMean),
            ImageStd = p.DoubleArray("image_std", s.ImageStd),
        };
        foreach (var (key, value, want) in new[] { ("patch_size", p.Optional<int?>("patch_size"), s.PatchSize), ("merge_size", p.Optional<int?>("merge_size"), s.MergeSize),
                                                  ("temporal_patch_size", p.Optional<int?>("temporal_patch_size"), s.TemporalPatchSize) })
            if (value is { } v && v != want) throw p.Invalid(key, $"is {v} but config.json's vision_config says {want}");
        if (p.Optional<int?>("resample") is { } r && r != 3) throw p.Invalid("resample", $"is {r}; only 3 (bicubic) is implemented");
        if (s.MinPixels <= 0 || s.MaxPixels < s.MinPixels) throw p.Invalid("max_pixels", $"must be at least min_pixels > 0, found {s.MinPixels}..{s.MaxPixels}");
        return config with { Settings = s };
    }

    public override IReadOnlyList<string> CompanionFiles => [ProcessorFileName, "chat_template.json", "generation_config.json"];

    public override JsonObject WriteConfig(ModelConfig config) => SourceAsSaved(config, "text_config");

    public override string CheckpointKey(string parameterName) => parameterName switch
    {
        _ when parameterName.StartsWith("vision_model.", StringComparison.Ordinal) => "visual." + parameterName["vision_model.".Length..],
        _ when parameterName.StartsWith("mlp1.", StringComparison.Ordinal) => "visual.merger." + parameterName["mlp1.".Length..],
        _ => parameterName,
    };

    public override CausalLanguageModel CreateModel(ModelConfig config) => new Qwen2VisionLanguageModel(config);

    public override ModelTokenizer LoadTokenizer(string dir, ModelConfig config) => TokenizerWith(dir, Template, "Qwen2-VL's chat template");

    /// <summary>The Instruct checkpoints' chat template for one user turn (text and at most one image, image first) and a
    /// generation prompt: the default system message, ChatML turns, &lt;|vision_start|&gt;&lt;|image_pad|&gt;…&lt;|vision_end|&gt;.</summary>
    internal static readonly ChatTemplate Template = new()
    {
        SystemPrefix = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        UserPrefix = "<|im_start|>user\n",
        AssistantPrefix = "<|im_start|>assistant\n",
        EndOfTurn = "<|im_end|>",
        TurnSeparator = "\n",
        ImagePlaceholder = "<image>",
        ImageStart = "<|vision_start|>",
        ImageContext = "<|image_pad|>",
        ImageEnd = "<|vision_end|>",
        ImageSeparator = "",
    };

    static Qwen2VlSettings S(ModelConfig c) => (Qwen2VlSettings)c.Settings!;

    public override int ImageTokens(int width, int height, ModelConfig config)
    {
        var g = Qwen2VlImages.Grid(height, width, S(config), "(image)");
        return g.T * g.H * g.W / (S(config).MergeSize * S(config).MergeSize);
    }

    public override ImageInput LoadImage(string path, ModelConfig config) => Qwen2VlImages.Load(path, S(config));

    public override string ImageRule(ModelConfig config)
    {
        var s = S(config);
        return $"any size resized to multiples of {s.Factor}px within {s.MinPixels}..{s.MaxPixels} pixels (PIL bicubic), patch {s.PatchSize}, " +
               $"{s.MergeSize}x{s.MergeSize} patches per token, in <|vision_start|>…<|vision_end|>" + (s.Version25 ? $"; window attention ({s.WindowSize}px)" : "");
    }
}

/// <summary>The Qwen2-VL layout in the common interface: encoder (vision_model ↔ visual.*), merger (mlp1 ↔ visual.merger.*),
/// and M-RoPE positions from get_rope_index.</summary>
internal sealed class Qwen2VisionLanguageModel : VisionLanguageModel
{
    public readonly Qwen2VisionEncoder vision_model;
    public readonly Qwen2PatchMerger mlp1;
    readonly Qwen2VlSettings s;

    public Qwen2VisionLanguageModel(ModelConfig config) : base(config, nameof(Qwen2VisionLanguageModel))
    {
        s = (Qwen2VlSettings)config.Settings!;
        vision_model = new Qwen2VisionEncoder(s);
        mlp1 = new Qwen2PatchMerger(s);
        RegisterComponents();
    }

    public override int ImageTokens(ImageInput image) =>
        image.Grid is { } g ? g.T * g.H * g.W / (s.MergeSize * s.MergeSize) : throw new ArgumentException("a Qwen2-VL image needs its grid");

    public override Tensor ImageFeatures(Tensor pixels, IReadOnlyList<ImageGrid>? grids)
    {
        using var scope = NewDisposeScope();
        if (grids is null) throw new ArgumentException("Qwen2-VL's encoder needs each image's grid");
        var (h, order) = vision_model.Forward(pixels, grids);
        var merged = mlp1.forward(h);                                            // [P / merge², hidden]
        if (order is not null) merged = merged.index_select(0, tensor(order).argsort()); // back from window order
        return merged.MoveToOuterDisposeScope();
    }

    /// <summary>get_rope_index for images: text positions count on from the last position used; an image's tokens take
    /// (t, row, col) of its merged grid offset by the text before it; padding (mask 0) keeps position 1 as transformers sets it.</summary>
    public override Tensor? PositionIds(Tensor inputIds, Tensor? attentionMask, IReadOnlyList<ImageGrid>? grids)
    {
        if (grids is null || grids.Count == 0) return null;
        long b = inputIds.shape[0], t = inputIds.shape[1];
        var ids = inputIds.data<long>().ToArray();
        var mask = attentionMask?.data<long>().ToArray();
        var pos = new long[3 * b * t];
        Array.Fill(pos, 1);
        int image = 0;
        for (int r = 0; r < b; r++)
        {
            var real = Enumerable.Range(0, (int)t).Where(i => mask is null || mask[r * t + i] == 1).ToList();
            long next = 0;
            for (int k = 0; k < real.Count;)
            {
                int col = real[k];
                long token = ids[r * t + col];
                bool startsImage = token == ImageTokenId && k > 0 && ids[r * t + real[k - 1]] == s.VisionStartTokenId;
                if (!startsImage)
                {
                    for (int a = 0; a < 3; a++) pos[(a * b + r) * t + col] = next;
                    next++; k++;
                    continue;
                }
                if (image >= grids.Count) throw new ArgumentException($"the input has more images than the {grids.Count} grid(s) given");
                var g = grids[image++];
                int gh = g.H / s.MergeSize, gw = g.W / s.MergeSize, n = g.T * gh * gw;
                for (int i = 0; i < n; i++, k++)
                {
                    int c = real[k];
                    pos[(0 * b + r) * t + c] = next + i / (gh * gw);
                    pos[(1 * b + r) * t + c] = next + i / gw % gh;
                    pos[(2 * b + r) * t + c] = next + i % gw;
                }
                next += Math.Max(g.T, Math.Max(gh, gw));
            }
        }
        return tensor(pos).reshape(3, b, t);
    }
}
