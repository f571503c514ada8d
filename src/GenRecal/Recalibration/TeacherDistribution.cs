using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// The teacher's next-token distribution at N scored answer positions, already at the KL's temperature T
/// (log_softmax(logits / T)), in one of two forms. <b>Full</b>: log-probabilities over the whole vocabulary [N, V].
/// <b>Top-k</b>: the k most likely ids [N, k], their log-probabilities [N, k] and the log of the remaining mass [N],
/// i.e. the distribution coarsened to k + 1 outcomes (those ids and "any other id"), which sums to one; the KL is taken
/// between the teacher's and the student's distributions coarsened the same way. Stored teacher features use the
/// top-k form for large vocabularies, where [N, V] per answer token would dominate the store (see TeacherFeatureStore).
/// </summary>
public sealed class TeacherDistribution : IDisposable
{
    TeacherDistribution(Tensor logProbs, Tensor? ids, Tensor? tailLogMass)
    {
        LogProbs = logProbs;
        Ids = ids;
        TailLogMass = tailLogMass;
    }

    /// <summary>[N, V] (full) or [N, k] (top-k), float32.</summary>
    public Tensor LogProbs { get; }
    /// <summary>[N, k] int64, the ids of <see cref="LogProbs"/>' columns; null in the full form.</summary>
    public Tensor? Ids { get; }
    /// <summary>[N] float32, log of the mass outside the top k; null in the full form.</summary>
    public Tensor? TailLogMass { get; }
    public bool IsTopK => Ids is not null;
    public long Rows => LogProbs.shape[0];

    public static TeacherDistribution Full(Tensor logProbs) => new(logProbs, null, null);

    public static TeacherDistribution TopK(Tensor ids, Tensor logProbs, Tensor tailLogMass)
    {
        if (ids.shape[0] != logProbs.shape[0] || ids.shape[1] != logProbs.shape[1] || tailLogMass.shape[0] != logProbs.shape[0])
            throw new ArgumentException($"top-k shapes disagree: ids [{string.Join(", ", ids.shape)}], log-probs [{string.Join(", ", logProbs.shape)}], tail [{string.Join(", ", tailLogMass.shape)}]");
        return new(logProbs, ids.dtype == ScalarType.Int64 ? ids : ids.to(ScalarType.Int64), tailLogMass);
    }

    /// <summary>From teacher logits [N, V] at temperature T: the full form, or the top-k form when <paramref name="topK"/> is
    /// given and smaller than V. The tail is a log-sum-exp over the ids left out (exact, where 1 − Σ top-k would lose
    /// every digit once the tail is below float32's resolution).</summary>
    public static TeacherDistribution FromLogits(Tensor logits, double temperature, int? topK = null)
    {
        using var scope = NewDisposeScope();
        var lp = (logits.to(ScalarType.Float32) / temperature).log_softmax(-1);                  // [N, V]
        if (topK is not { } k || k >= lp.shape[1]) return Full(lp.MoveToOuterDisposeScope());
        var (values, ids) = lp.topk(k, dim: -1);                                                 // [N, k]
        var tail = lp.scatter(1, ids, full_like(values, double.NegativeInfinity)).logsumexp(-1); // [N]
        return TopK(ids.MoveToOuterDisposeScope(), values.MoveToOuterDisposeScope(), tail.MoveToOuterDisposeScope());
    }

    /// <summary>The rows of several distributions of one form, in order (a batch from per-example pieces).</summary>
    public static TeacherDistribution Concat(IReadOnlyList<TeacherDistribution> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("no distributions to concatenate");
        if (parts.Any(p => p.IsTopK != parts[0].IsTopK)) throw new ArgumentException("cannot concatenate full and top-k distributions");
        var lp = cat(parts.Select(p => p.LogProbs).ToArray(), 0);
        return parts[0].IsTopK
            ? TopK(cat(parts.Select(p => p.Ids!).ToArray(), 0), lp, cat(parts.Select(p => p.TailLogMass!).ToArray(), 0))
            : Full(lp);
    }

    public void Dispose()
    {
        LogProbs.Dispose();
        Ids?.Dispose();
        TailLogMass?.Dispose();
    }
}
