using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>
/// Rotary position embedding as in transformers' Qwen2/LLaMA ("default" rope type): frequencies
/// theta^(-2i/d), the half-split rotate_half layout. Positions are explicit so a caller can number a
/// sequence however it needs (left padding, the Recalibrator's fresh 0..L-1 ids).
/// </summary>
public sealed class RotaryEmbedding
{
    readonly Tensor invFreq; // [D/2]

    public RotaryEmbedding(int headDim, double theta)
    {
        invFreq = (1.0 / pow(theta, arange(0, headDim, 2, ScalarType.Float64) / headDim)).to(ScalarType.Float32);
        invFreq.DetachFromDisposeScope();
    }

    /// <summary>cos and sin for <paramref name="positionIds"/> [B, T] → each [B, 1, T, D] (broadcast over heads).</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1) * invFreq; // [B, T, D/2]
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                         // [B, 1, T, D]
        return (emb.cos().MoveToOuterDisposeScope(), emb.sin().MoveToOuterDisposeScope());
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([-x2, x1], -1); // rotate_half: [B, H, T, D]
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}
