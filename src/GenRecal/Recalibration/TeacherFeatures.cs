using GenRecal.Data;
using GenRecal.Models;
using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// Everything a GenRecal step needs from the frozen teacher for one batch: its question features z_ql [B, Lq, Dt]
/// (the regularizer's input), the Recalibrator's answer input [B, La, Dt] (z_al or the answer input embeddings, per
/// <see cref="AnswerSource"/>) and its distribution at the scored answer positions (the KL's target). Rows are
/// right-padded with zeros per <see cref="GenRecalLossStep.Segments"/>; the distribution holds the scored rows only,
/// example by example (<see cref="GenRecalLossStep.ScoredRows"/>). Computed live (<see cref="Compute"/>) or read
/// from a <c>Training.TeacherFeatureStore</c>: the teacher is frozen and in eval mode, so the two agree.
/// </summary>
public sealed record TeacherFeatures(Tensor Question, Tensor AnswerInput, TeacherDistribution Targets)
{
    /// <summary>The teacher's features for <paramref name="batch"/>, run now without gradients.</summary>
    public static TeacherFeatures Compute(CausalLanguageModel teacher, ModelBatch batch, AnswerSource source, double temperature)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var t = GenRecalLossStep.SplitOf(batch);
        var (embeds, zl) = GenRecalLossStep.EmbedsAndHidden(teacher, batch);                                         // [B, Tl, Dt]
        var zql = GenRecalLossStep.Segments(zl, [.. t.QuestionLengths.Select(_ => 0)], t.QuestionLengths);          // [B, Lq, Dt]
        var zal = GenRecalLossStep.Segments(zl, t.AnswerStarts, t.AnswerLengths);                                    // [B, La, Dt]
        var input = source == AnswerSource.TeacherHidden ? zal : GenRecalLossStep.Segments(embeds, t.AnswerStarts, t.AnswerLengths);
        var (rows, _) = GenRecalLossStep.ScoredRows(batch, t);
        var logits = teacher.Head(zal.reshape(-1, zal.shape[2]).index_select(0, rows));                            // [N, Vt]
        var targets = TeacherDistribution.FromLogits(logits, temperature);
        // float32 whatever the teacher computes in (a BF16 teacher's values are exact in float32), as the store keeps them
        return new TeacherFeatures(zql.to(ScalarType.Float32).MoveToOuterDisposeScope(), input.to(ScalarType.Float32).MoveToOuterDisposeScope(), Moved(targets));
    }

    static TeacherDistribution Moved(TeacherDistribution d)
    {
        d.LogProbs.MoveToOuterDisposeScope();
        d.Ids?.MoveToOuterDisposeScope();
        d.TailLogMass?.MoveToOuterDisposeScope();
        return d;
    }
}
