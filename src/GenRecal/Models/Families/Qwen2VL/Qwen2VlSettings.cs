namespace GenRecal.Models.Families.Qwen2VL;

/// <summary>
/// Qwen2-VL / Qwen2.5-VL's vision encoder, merger and image processor settings, with the key names and defaults of
/// transformers' Qwen2VLVisionConfig / Qwen2_5_VLVisionConfig and Qwen2VLImageProcessor.
/// </summary>
internal sealed record Qwen2VlSettings : FamilySettings
{
    /// <summary>true for Qwen2.5-VL: RMSNorm, SwiGLU MLP, window attention outside <see cref="FullAttentionBlocks"/>.</summary>
    public bool Version25 { get; init; }
    public int Depth { get; init; }
    /// <summary>Encoder width (Qwen2-VL's embed_dim, Qwen2.5-VL's hidden_size).</summary>
    public int Width { get; init; }
    public int Heads { get; init; }
    /// <summary>The encoder MLP's hidden size (embed_dim · mlp_ratio, or intermediate_size for 2.5).</summary>
    public int MlpHidden { get; init; }
    /// <summary>The merger's output width (the LM's hidden size).</summary>
    public int OutWidth { get; init; }
    public int InChannels { get; init; } = 3;
    public int PatchSize { get; init; } = 14;
    public int TemporalPatchSize { get; init; } = 2;
    public int MergeSize { get; init; } = 2;
    public string HiddenAct { get; init; } = "quick_gelu";
    public int WindowSize { get; init; } = 112;
    public int[] FullAttentionBlocks { get; init; } = [];
    public int VisionStartTokenId { get; init; }
    public int VisionEndTokenId { get; init; }
    // processor (preprocessor_config.json)
    public int MinPixels { get; init; } = 56 * 56;
    public int MaxPixels { get; init; } = 28 * 28 * 1280;
    public double[] ImageMean { get; init; } = [0.48145466, 0.4578275, 0.40821073];
    public double[] ImageStd { get; init; } = [0.26862954, 0.26130258, 0.27577711];

    public int Factor => PatchSize * MergeSize;
    public int PatchValues => InChannels * TemporalPatchSize * PatchSize * PatchSize;
}
