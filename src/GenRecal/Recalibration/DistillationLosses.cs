using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// The loss terms of GenRecal (Algorithms 1-3), in float32 with ignore_index -100, as small functions with
/// documented shapes (after torchtune's kd_losses). Each returns a scalar mean over counted tokens.
/// </summary>
public static class DistillationLosses
{
    public const long IgnoreIndex = -100;

    /// <summary>Cross-entropy of logits [N, V] against targets [N] (−100 = ignored), mean over counted targets.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var valid = targets.ne(IgnoreIndex);
        var count = valid.sum().clamp_min(1).to(ScalarType.Float32);
        var logp = logits.to(ScalarType.Float32).log_softmax(-1);                   // [N, V]
        var picked = logp.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1);  // [N]
        return (-(picked * valid) .sum() / count).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Forward KL(p_teacher ‖ p_student) = Σ_v p_t (log p_t − log p_s) per token, at temperature T, mean over
    /// rows where <paramref name="mask"/> [N] is true; scaled by T² so gradients keep their size (Hinton et al.).
    /// </summary>
    public static Tensor ForwardKl(Tensor teacherLogits, Tensor studentLogits, Tensor mask, double temperature = 1.0)
    {
        using var scope = NewDisposeScope();
        var t = (teacherLogits.to(ScalarType.Float32) / temperature).log_softmax(-1); // [N, V]
        var s = (studentLogits.to(ScalarType.Float32) / temperature).log_softmax(-1); // [N, V]
        var perToken = (t.exp() * (t - s)).sum(-1);                                     // [N]
        var m = mask.to(ScalarType.Float32);
        var kl = (perToken * m).sum() / m.sum().clamp_min(1);
        return (kl * (temperature * temperature)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Universal Logit Distillation (Boizard et al., arXiv 2402.12030, eq. 5): per row, the L1 distance between the
    /// teacher's and the student's probability vectors, each sorted in descending order and zero-padded to the larger
    /// vocabulary, so the two vocabularies need not match; mean over rows where <paramref name="mask"/> [N] is true.
    /// teacherLogits [N, Vt], studentLogits [N, Vs]: row i of each scores the same answer position.
    /// </summary>
    public static Tensor UldSortedL1(Tensor teacherLogits, Tensor studentLogits, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var pt = teacherLogits.to(ScalarType.Float32).softmax(-1).sort(-1, descending: true).Values; // [N, Vt]
        var ps = studentLogits.to(ScalarType.Float32).softmax(-1).sort(-1, descending: true).Values; // [N, Vs]
        long v = Math.Max(pt.shape[1], ps.shape[1]);
        pt = nn.functional.pad(pt, [0, v - pt.shape[1]]);                                            // [N, V]
        ps = nn.functional.pad(ps, [0, v - ps.shape[1]]);                                            // [N, V]
        var perRow = (pt - ps).abs().sum(-1);                                                        // [N]
        var m = mask.to(ScalarType.Float32);
        return ((perRow * m).sum() / m.sum().clamp_min(1)).MoveToOuterDisposeScope();
    }

    /// <summary>Next-token cross-entropy of a causal LM: logits [B, T, V] at t predict labels [B, T] at t+1.</summary>
    public static Tensor NextTokenCrossEntropy(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long t = logits.shape[1];
        var shiftedLogits = logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]); // [B*(T-1), V]
        var shiftedLabels = labels.narrow(1, 1, t - 1).reshape(-1);                   // [B*(T-1)]
        return CrossEntropy(shiftedLogits, shiftedLabels).MoveToOuterDisposeScope();
    }
}
