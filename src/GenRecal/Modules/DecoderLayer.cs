using GenRecal.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>Pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x)) (transformers Qwen2DecoderLayer).</summary>
public sealed class DecoderLayer : nn.Module
{
    public readonly RMSNorm input_layernorm, post_attention_layernorm;
    public readonly Attention self_attn;
    public readonly SwiGluMlp mlp;

    public DecoderLayer(LanguageModelConfig c) : base(nameof(DecoderLayer))
    {
        input_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        self_attn = new Attention(c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.AttentionBias);
        post_attention_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps);
        mlp = new SwiGluMlp(c.HiddenSize, c.IntermediateSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, layer);
        return (h + mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}
