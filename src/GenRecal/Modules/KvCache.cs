using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>Keys and values of every decoder layer seen so far; grows along the sequence axis.</summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor?[] keys, values;

    public KvCache(int layers)
    {
        keys = new Tensor?[layers];
        values = new Tensor?[layers];
    }

    /// <summary>Tokens already cached (the past length new queries are numbered after).</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>Appends this step's k, v [B, KvH, T, D] for a layer and returns the full ones [B, KvH, S, D].</summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        var newK = keys[layer] is { } pk ? cat([pk, k], 2) : k.alias();
        var newV = values[layer] is { } pv ? cat([pv, v], 2) : v.alias();
        keys[layer]?.Dispose();
        values[layer]?.Dispose();
        keys[layer] = newK.DetachFromDisposeScope();
        values[layer] = newV.DetachFromDisposeScope();
        return (newK.alias(), newV.alias());
    }

    public void Dispose()
    {
        foreach (var t in keys) t?.Dispose();
        foreach (var t in values) t?.Dispose();
    }
}
