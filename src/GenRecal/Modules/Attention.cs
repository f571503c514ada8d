using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>
/// Grouped-query causal self-attention of Qwen2 / LLaMA (ported from transformers
/// models/qwen2/modeling_qwen2.py, eager path). Field names are the HF weight keys.
/// </summary>
public sealed class Attention : nn.Module
{
    readonly int heads, kvHeads, headDim;
    public readonly Linear q_proj, k_proj, v_proj, o_proj;

    public Attention(int hidden, int heads, int kvHeads, int headDim, bool bias) : base(nameof(Attention))
    {
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        q_proj = nn.Linear(hidden, heads * headDim, hasBias: bias);
        k_proj = nn.Linear(hidden, kvHeads * headDim, hasBias: bias);
        v_proj = nn.Linear(hidden, kvHeads * headDim, hasBias: bias);
        o_proj = nn.Linear(heads * headDim, hidden, hasBias: false);
        RegisterComponents();
    }

    /// <param name="x">[B, T, hidden]</param>
    /// <param name="cos">[B, 1, T, D] from <see cref="RotaryEmbedding"/></param>
    /// <param name="mask">additive [B, 1, T, S] (0 = attend, very negative = blocked)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, heads, headDim).transpose(1, 2);   // [B, H, T, D]
        var k = k_proj.forward(x).view(b, t, kvHeads, headDim).transpose(1, 2); // [B, KvH, T, D]
        var v = v_proj.forward(x).view(b, t, kvHeads, headDim).transpose(1, 2); // [B, KvH, T, D]
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(layer, k, v);              // [B, KvH, S, D]
        int groups = heads / kvHeads;
        if (groups > 1)
        {
            k = k.repeat_interleave(groups, 1); // [B, H, S, D]
            v = v.repeat_interleave(groups, 1);
        }
        var scores = q.matmul(k.transpose(2, 3)) / Math.Sqrt(headDim) + mask; // [B, H, T, S]
        var probs = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
        var o = probs.matmul(v).transpose(1, 2).reshape(b, t, heads * headDim); // [B, T, H*D]
        return o_proj.forward(o).MoveToOuterDisposeScope();
    }
}
