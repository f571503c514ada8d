using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>
/// Rotary position embedding as in transformers' Qwen2/LLaMA ("default" rope type): frequencies
/// theta^(-2i/d), the half-split rotate_half layout. Positions are explicit so a caller can number a
/// sequence however it needs (left padding, the Recalibrator's fresh 0..L-1 ids).
/// With an M-RoPE section (Qwen2-VL), positions are [3, B, T] (temporal, height, width) and each channel of the
/// rotation takes its angle from one of the three, as transformers' apply_multimodal_rotary_pos_emb does.
/// </summary>
public sealed class RotaryEmbedding
{
    readonly Tensor invFreq; // [D/2]
    readonly Tensor? axisOfChannel; // [D]: which of the 3 position axes each channel of cat(freqs, freqs) uses

    public RotaryEmbedding(int headDim, double theta, IReadOnlyList<int>? mropeSection = null)
    {
        invFreq = (1.0 / pow(theta, arange(0, headDim, 2, ScalarType.Float64) / headDim)).to(ScalarType.Float32);
        invFreq.DetachFromDisposeScope();
        if (mropeSection is not null)
        {
            if (mropeSection.Count != 3 || mropeSection.Sum() * 2 != headDim)
                throw new ArgumentException($"mrope_section [{string.Join(", ", mropeSection)}] must have 3 parts summing to head_dim / 2 = {headDim / 2}");
            // sections repeated twice (the two halves of cat(freqs, freqs)); chunk i uses axis i % 3
            var axes = mropeSection.Concat(mropeSection).SelectMany((n, i) => Enumerable.Repeat((long)(i % 3), n)).ToArray();
            axisOfChannel = tensor(axes);
            axisOfChannel.DetachFromDisposeScope();
        }
    }

    /// <summary>cos and sin for <paramref name="positionIds"/> [B, T] (or [3, B, T] with M-RoPE) → each [B, 1, T, D]
    /// (broadcast over heads), computed in float32 and returned in <paramref name="dtype"/> (the activations' type, as
    /// transformers casts them: fp32 angles would otherwise turn bf16 q/k into fp32).</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var frequencies = Devices.On(invFreq, positionIds.device);
        Tensor emb;
        if (positionIds.dim() == 3)
        {
            if (axisOfChannel is null) throw new ArgumentException("3-D position ids need an M-RoPE section");
            var freqs3 = positionIds.to(ScalarType.Float32).unsqueeze(-1) * frequencies; // [3, B, T, D/2]
            var all = cat([freqs3, freqs3], -1);                                         // [3, B, T, D]
            var index = Devices.On(axisOfChannel, positionIds.device).view(1, 1, 1, -1).expand(1, all.shape[1], all.shape[2], -1);
            emb = all.gather(0, index).squeeze(0).unsqueeze(1);                          // [B, 1, T, D]
        }
        else
        {
            var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1) * frequencies; // [B, T, D/2]
            emb = cat([freqs, freqs], -1).unsqueeze(1);                             // [B, 1, T, D]
        }
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
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
