using System.Text.Json.Nodes;

namespace GenRecal.Models;

/// <summary>
/// The ViT vision encoder and the InternVL-style projector (pixel shuffle then MLP). Stored under
/// "vision_config" in config.json with HF/InternViT key names; the projector's downsample_ratio is
/// InternVL's top-level key, kept in the same section here.
/// </summary>
public sealed record VisionConfig
{
    public int ImageSize { get; init; } = 32;
    public int PatchSize { get; init; } = 4;
    public int NumChannels { get; init; } = 3;
    public int HiddenSize { get; init; } = 64;
    public int IntermediateSize { get; init; } = 128;
    public int NumHiddenLayers { get; init; } = 2;
    public int NumAttentionHeads { get; init; } = 4;
    public double LayerNormEps { get; init; } = 1e-6;
    /// <summary>Pixel-shuffle ratio: 0.5 merges 2x2 patches into one token (InternVL), 1 keeps every patch.</summary>
    public double DownsampleRatio { get; init; } = 0.5;
    public double[] ImageMean { get; init; } = [0.485, 0.456, 0.406];
    public double[] ImageStd { get; init; } = [0.229, 0.224, 0.225];

    // InternViT options (modeling_intern_vit.py). The defaults are the project's own encoder: no class token,
    // no layer scale, LayerNorm, q/k/v bias, every layer's output used.
    /// <summary>A learned class token before the patches (InternViT's class_embedding); dropped before the projector.</summary>
    public bool ClassToken { get; init; }
    /// <summary>Per-channel residual scales ls1, ls2 (InternViT's layer scale).</summary>
    public bool LayerScale { get; init; }
    public bool QkvBias { get; init; } = true;
    /// <summary>RMS norms on the full-width q and k before the heads split (InternViT-6B's qk_normalization).</summary>
    public bool QkNormalization { get; init; }
    /// <summary>"layer_norm" or "rms_norm" for norm1/norm2 (InternViT's norm_type).</summary>
    public string NormType { get; init; } = "layer_norm";
    /// <summary>Which hidden state feeds the projector: -1 the last layer's output, -2 the one before, ... (InternVL's
    /// select_layer; index into (embeddings, layer 1, ..., layer N)).</summary>
    public int SelectLayer { get; init; } = -1;
    /// <summary>Pixel-shuffle version: "v2" ends with InternVL's extra transpose, "v1" without it.</summary>
    public string PixelShuffleVersion { get; init; } = "v2";
    /// <summary>Side of the square the encoder is run on (InternVL's force_image_size); the position embedding is
    /// stored for <see cref="ImageSize"/> and interpolated bicubically when the two differ.</summary>
    public int? InputSize { get; init; }

    public int TileSize => InputSize ?? ImageSize;
    public int PositionGrid => ImageSize / PatchSize;
    public int PatchesPerSide => TileSize / PatchSize;
    public int ShuffleFactor => (int)Math.Round(1 / DownsampleRatio);
    /// <summary>Image tokens the language model sees per tile (per image for a model without tiling).</summary>
    public int NumImageTokens => PatchesPerSide / ShuffleFactor * (PatchesPerSide / ShuffleFactor);
    public int ProjectorInputSize => HiddenSize * ShuffleFactor * ShuffleFactor;

    /// <summary>Encoder layers run: those up to the selected hidden state.</summary>
    public int LayersUsed => NumHiddenLayers + 1 + SelectLayer;

    internal static VisionConfig Read(ConfigJson j)
    {
        var c = new VisionConfig
        {
            ImageSize = j.Required<int>("image_size"),
            PatchSize = j.Required<int>("patch_size"),
            NumChannels = j.Optional("num_channels", 3),
            HiddenSize = j.Required<int>("hidden_size"),
            IntermediateSize = j.Required<int>("intermediate_size"),
            NumHiddenLayers = j.Required<int>("num_hidden_layers"),
            NumAttentionHeads = j.Required<int>("num_attention_heads"),
            LayerNormEps = j.Optional("layer_norm_eps", 1e-6),
            DownsampleRatio = j.Optional("downsample_ratio", 0.5),
            ImageMean = j.DoubleArray("image_mean", [0.485, 0.456, 0.406]),
            ImageStd = j.DoubleArray("image_std", [0.229, 0.224, 0.225]),
        };
        c.Validate(j.File);
        return c;
    }

    public void Validate(string file)
    {
        void Positive(string key, int v) { if (v <= 0) throw new InvalidDataException($"{file}: key '{key}' must be positive, found {v}"); }
        Positive("image_size", ImageSize); Positive("patch_size", PatchSize); 
        // the preprocessor makes RGB pixel values, so the encoder must take three channels
        if (NumChannels != 3) throw new InvalidDataException($"{file}: key 'num_channels' must be 3 (RGB), found {NumChannels}");
        Positive("hidden_size", HiddenSize); Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers); Positive("num_attention_heads", NumAttentionHeads);
        if (!(DownsampleRatio > 0 && DownsampleRatio <= 1)) throw new InvalidDataException($"{file}: downsample_ratio must be in (0, 1], found {DownsampleRatio}");
        if (ImageSize % PatchSize != 0) throw new InvalidDataException($"{file}: image_size {ImageSize} must be a multiple of patch_size {PatchSize}");
        if (TileSize <= 0 || TileSize % PatchSize != 0) throw new InvalidDataException($"{file}: force_image_size {TileSize} must be a positive multiple of patch_size {PatchSize}");
        if (NormType is not ("layer_norm" or "rms_norm")) throw new InvalidDataException($"{file}: norm_type '{NormType}' is not supported (layer_norm, rms_norm)");
        if (PixelShuffleVersion is not ("v1" or "v2")) throw new InvalidDataException($"{file}: ps_version '{PixelShuffleVersion}' is not supported (v1, v2)");
        if (SelectLayer >= 0 || SelectLayer < -NumHiddenLayers) throw new InvalidDataException($"{file}: select_layer {SelectLayer} must be in [-{NumHiddenLayers}, -1] (the encoder has {NumHiddenLayers} layers)");
        if (ShuffleFactor < 1 || Math.Abs(1.0 / ShuffleFactor - DownsampleRatio) > 1e-9 || PatchesPerSide % ShuffleFactor != 0)
            throw new InvalidDataException($"{file}: downsample_ratio {DownsampleRatio} must be 1/k with k dividing {PatchesPerSide} patches per side");
        if (HiddenSize % NumAttentionHeads != 0) throw new InvalidDataException($"{file}: vision hidden_size {HiddenSize} must be a multiple of num_attention_heads {NumAttentionHeads}");
        if (ImageMean.Length != NumChannels || ImageStd.Length != NumChannels)
            throw new InvalidDataException($"{file}: image_mean and image_std need {NumChannels} values");
        // preprocessing divides by image_std: a zero would turn every pixel into Inf/NaN
        if (ImageStd.Any(s => !double.IsFinite(s) || s <= 0)) throw new InvalidDataException($"{file}: image_std values must be positive and finite, found [{string.Join(", ", ImageStd)}]");
        if (ImageMean.Any(m => !double.IsFinite(m))) throw new InvalidDataException($"{file}: image_mean values must be finite, found [{string.Join(", ", ImageMean)}]");
        if (!double.IsFinite(LayerNormEps) || LayerNormEps <= 0) throw new InvalidDataException($"{file}: layer_norm_eps must be positive, found {LayerNormEps}");
    }

    public JsonObject ToJson() => new()
    {
        ["image_size"] = ImageSize, ["patch_size"] = PatchSize, ["num_channels"] = NumChannels,
        ["hidden_size"] = HiddenSize, ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers, ["num_attention_heads"] = NumAttentionHeads,
        ["layer_norm_eps"] = LayerNormEps, ["downsample_ratio"] = DownsampleRatio,
        ["image_mean"] = new JsonArray(ImageMean.Select(v => (JsonNode)v).ToArray()),
        ["image_std"] = new JsonArray(ImageStd.Select(v => (JsonNode)v).ToArray()),
    };
}
