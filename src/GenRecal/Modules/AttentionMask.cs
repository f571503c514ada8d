using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>Builds additive attention masks and default position ids from HF-style padding masks.</summary>
public static class AttentionMask
{
    /// <summary>
    /// Causal + padding mask [B, 1, T, S] for T new queries after <paramref name="past"/> cached tokens.
    /// <paramref name="padding"/> is [B, S] with 1 for real tokens and 0 for padding (HF convention), or null.
    /// Blocked entries get the dtype's minimum (as transformers does) so fully padded rows stay finite.
    /// <paramref name="dtype"/> is the attention scores' type (the activations'): transformers builds the mask in it, and
    /// a float32 mask added to bf16 scores would promote the whole [B, H, T, S] score tensor to float32.
    /// The mask is built on <paramref name="device"/> (the scores' device; the CPU when null).
    /// </summary>
    public static Tensor Causal(long batch, long queries, long past, Tensor? padding, bool causal = true,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var scope = NewDisposeScope();
        long keys = past + queries;
        var qi = arange(past, keys, ScalarType.Int64, device).view(queries, 1); // [T, 1]
        var kj = arange(0, keys, ScalarType.Int64, device).view(1, keys);        // [1, S]
        var allowed = causal ? kj.le(qi) : ones(queries, keys, ScalarType.Bool, device);
        var mask = allowed.view(1, 1, queries, keys).expand(batch, 1, queries, keys);        // [B, 1, T, S]
        if (padding is not null) mask = mask.logical_and(padding.to(ScalarType.Bool).view(batch, 1, 1, keys));
        var additive = dtype == ScalarType.Float32
            ? zeros(batch, 1, queries, keys, device: device).masked_fill(mask.logical_not(), float.MinValue)
            : zeros(batch, 1, queries, keys, dtype, device).masked_fill(mask.logical_not(), finfo(dtype).min);
        return additive.MoveToOuterDisposeScope();
    }

    /// <summary>Position ids [B, T] for the last T of S tokens: count of real tokens before each one
    /// (left padding gets 0), or past..past+T-1 on <paramref name="device"/> without a mask.</summary>
    public static Tensor Positions(long batch, long queries, long past, Tensor? padding, Device? device = null)
    {
        using var scope = NewDisposeScope();
        Tensor pos = padding is null
            ? arange(past, past + queries, ScalarType.Int64, device).unsqueeze(0).expand(batch, queries)
            : (padding.to(ScalarType.Int64).cumsum(1) - 1).clamp_min(0).narrow(1, past, queries);
        return pos.contiguous().MoveToOuterDisposeScope();
    }
}
