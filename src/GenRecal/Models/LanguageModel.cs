using GenRecal.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// The VLM-body: token embedding, decoder stack, final norm (transformers Qwen2Model / LlamaModel).
/// Returns the last hidden states after the final norm — the z_* features GenRecal works on.
/// </summary>
public sealed class LanguageModel : nn.Module
{
    public readonly Embedding embed_tokens;
    public readonly ModuleList<DecoderLayer> layers;
    public readonly RMSNorm norm;
    readonly RotaryEmbedding rotary;

    public LanguageModel(LanguageModelConfig c) : base(nameof(LanguageModel))
    {
        Config = c;
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new DecoderLayer(c)).ToArray());
        norm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        rotary = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.MRopeSection);
        RegisterComponents();
    }

    public LanguageModelConfig Config { get; }

    /// <param name="inputsEmbeds">[B, T, hidden]</param>
    /// <param name="attentionMask">[B, S] 1 = token, 0 = padding, S = cached + T; null = no padding</param>
    /// <param name="positionIds">[B, T] ([3, B, T] with M-RoPE); null = derived from the mask and the cache length</param>
    public Tensor Forward(Tensor inputsEmbeds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        long b = inputsEmbeds.shape[0], t = inputsEmbeds.shape[1], past = cache?.Length ?? 0;
        if (Config.DynamicRope && past + t > Config.MaxPositionEmbeddings)
            throw new ArgumentException($"{past + t} positions exceed max_position_embeddings {Config.MaxPositionEmbeddings}, beyond which dynamic rope scaling (not implemented) would change the rotary frequencies");
        var device = inputsEmbeds.device;
        if (attentionMask is not null) attentionMask = Devices.On(attentionMask, device);
        positionIds = positionIds is null ? AttentionMask.Positions(b, t, past, attentionMask, device) : Devices.On(positionIds, device);
        var mask = AttentionMask.Causal(b, t, past, attentionMask, dtype: inputsEmbeds.dtype, device: device);
        var (cos, sin) = rotary.Compute(positionIds, inputsEmbeds.dtype);
        var h = inputsEmbeds;
        for (int i = 0; i < layers.Count; i++) h = layers[i].Forward(h, cos, sin, mask, cache, i);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
