using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>
/// What one loss step returns: each term on its own (null where the step has none), logged separately, and
/// <see cref="Loss"/>, their sum under the config's written-out weights, which is what is backpropagated.
/// </summary>
public sealed record LossTerms(Tensor Loss)
{
    /// <summary>GenRecal: CE of the teacher head on the recalibrated answer against the teacher's answer tokens.</summary>
    public Tensor? CeRecal { get; init; }
    /// <summary>Forward KL with the teacher's distribution first: to the recalibrated answer (GenRecal) or the student's (kd).</summary>
    public Tensor? Kl { get; init; }
    /// <summary>GenRecal's regularizer (Algorithm 2): the same CE and KL with the teacher's own question features.</summary>
    public Tensor? RegCe { get; init; }
    public Tensor? RegKl { get; init; }
    /// <summary>The student's own next-token CE on its answer tokens.</summary>
    public Tensor? CeStudent { get; init; }
    /// <summary>ULD's sorted-probability L1.</summary>
    public Tensor? Uld { get; init; }

    /// <summary>The terms present, by their metric names (metrics.jsonl keys), the total last.</summary>
    public IEnumerable<(string Name, Tensor Value)> Named()
    {
        foreach (var (name, value) in new[] { ("ce_recal", CeRecal), ("kl", Kl), ("reg_ce", RegCe), ("reg_kl", RegKl), ("ce_student", CeStudent), ("uld", Uld) })
            if (value is not null) yield return (name, value);
        yield return ("loss", Loss);
    }

    /// <summary>Every tensor moved out of the step's dispose scope, for the caller to use and dispose.</summary>
    public LossTerms MoveToOuterDisposeScope()
    {
        foreach (var (_, t) in Named()) t.MoveToOuterDisposeScope();
        return this;
    }
}
