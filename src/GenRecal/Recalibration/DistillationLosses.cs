using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// The loss terms of GenRecal (Algorithms 1-3), in float32 with ignore_index -100, as small functions with
/// documented shapes (after torchtune's kd_losses). Each returns a scalar mean over counted tokens.
/// </summary>
public static class DistillationLosses
{
    public const long IgnoreIndex = -100;

    /// <summary>Cross-entropy of logits [N, V] against targets [N] (−100 = ignored), mean over counted targets. Written as
    /// logsumexp − the target's logit, so no [N, V] log-softmax is made and kept for the backward pass (the logits are
    /// what logsumexp keeps, and they exist anyway).</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var valid = targets.ne(IgnoreIndex);
        var count = valid.sum().clamp_min(1).to(ScalarType.Float32);
        var z = logits.to(ScalarType.Float32);
        var picked = z.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1) - z.logsumexp(-1); // [N] log p(target)
        return (-(picked * valid).sum() / count).MoveToOuterDisposeScope();
    }

    /// <summary>Elements of one chunk of a KL's rows: a chunk's temporaries are [rows, V], so large vocabularies are scored
    /// a bounded slice at a time (16 MiB of float32).</summary>
    public const long KlChunkElements = 1L << 22;

    /// <summary>
    /// Forward KL(p_teacher ‖ p_student) = Σ_v p_t (log p_t − log p_s) per token, at temperature T, mean over
    /// rows where <paramref name="mask"/> [N] is true; scaled by T² so gradients keep their size (Hinton et al.).
    /// </summary>
    public static Tensor ForwardKl(Tensor teacherLogits, Tensor studentLogits, Tensor mask, double temperature = 1.0)
    {
        using var scope = NewDisposeScope();
        var rows = mask.nonzero().reshape(-1);                                                   // [M]
        using var teacher = TeacherDistribution.FromLogits(teacherLogits.index_select(0, rows), temperature);
        return ForwardKl(teacher, studentLogits.index_select(0, rows), temperature).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Forward KL(teacher ‖ student) at temperature T (T² scaled), mean over the N rows of <paramref name="teacher"/>
    /// (already at temperature T) and <paramref name="studentLogits"/> [N, V]; 0 when N is 0. Per row, with z the
    /// student's logits / T: KL = Σ p_t log p_t + logsumexp(z) − Σ p_t z, so the only full-vocabulary tensors kept for
    /// the backward pass are the logits and the teacher's probabilities (the naive form keeps log_softmax(z),
    /// p_t and log p_t − log p_s besides); the products are chunk-sized temporaries, summed pairwise (a BLAS dot product
    /// instead lost 2e-3 of the KL's value over a million ids in float32). The top-k form scores both distributions coarsened to the teacher's k ids
    /// plus "any other id" (see <see cref="TeacherDistribution"/>): Σ_k q_k (log q_k − log p_k) + q_tail (log q_tail − log p_tail).
    /// Rows are taken <see cref="KlChunkElements"/> elements at a time.
    /// </summary>
    public static Tensor ForwardKl(TeacherDistribution teacher, Tensor studentLogits, double temperature = 1.0)
    {
        using var scope = NewDisposeScope();
        long n = studentLogits.shape[0], v = studentLogits.shape[1];
        if (teacher.Rows != n) throw new ArgumentException($"the teacher scores {teacher.Rows} rows, the student {n}");
        if (n == 0) return zeros(1, ScalarType.Float32).squeeze().MoveToOuterDisposeScope();
        long chunk = Math.Max(1, KlChunkElements / v);
        var parts = new List<Tensor>();
        for (long start = 0; start < n; start += chunk)
        {
            long len = Math.Min(chunk, n - start);
            var z = studentLogits.narrow(0, start, len).to(ScalarType.Float32);
            if (temperature != 1.0) z = z / temperature;                                          // [c, V]
            var lse = z.logsumexp(-1);                                                           // [c]
            var lq = teacher.LogProbs.narrow(0, start, len);                                     // [c, V] or [c, k]
            if (!teacher.IsTopK)
            {
                var p = lq.exp();                                                                // [c, V], no gradient
                parts.Add((p * lq).sum(-1) + lse - (p * z).sum(-1));
                continue;
            }
            var ids = teacher.Ids!.narrow(0, start, len);                                        // [c, k]
            var lpk = z.gather(1, ids) - lse.unsqueeze(1);                                       // [c, k] student log p on the teacher's ids
            var lpTail = z.scatter(1, ids, full_like(lpk, double.NegativeInfinity)).logsumexp(-1) - lse; // [c]
            // an empty teacher tail (float32 underflow) contributes 0, not 0·(−∞)
            var lqTail = teacher.TailLogMass!.narrow(0, start, len).clamp_min(-100);             // [c]
            parts.Add((lq.exp() * (lq - lpk)).sum(-1) + lqTail.exp() * (lqTail - lpTail));
        }
        var kl = cat(parts.ToArray(), 0).mean();
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
