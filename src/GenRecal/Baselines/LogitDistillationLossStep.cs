using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Baselines;

/// <summary>
/// One step of the logit-distillation baselines. Both run the frozen teacher and the student on their own
/// tokenizations of the same examples and score answer positions only (the LM heads never see the question).
/// kd: the two tokenizations are identical (checked before training), so answer position k of one is answer
/// position k of the other; loss = CE + w_kl · T²·KL(teacher ‖ student). uld: the k-th answer token of each side
/// is paired, truncated to the shorter answer (Boizard et al. 2024, §3); loss = CE + w_uld · sorted-L1.
/// CE is the student's next-token loss over all its answer tokens, as SFT's.
/// </summary>
public sealed class LogitDistillationLossStep(CausalLanguageModel teacher, CausalLanguageModel student, DistillationMethod method, TrainingConfig config)
{
    public LossTerms Compute(ModelBatch teacherBatch, ModelBatch studentBatch)
    {
        using var scope = NewDisposeScope();
        var tRows = AnswerRows.Of(teacherBatch);
        var sRows = AnswerRows.Of(studentBatch);
        var (tPaired, sPaired) = AnswerRows.Pair(tRows, sRows, requireEqual: method == DistillationMethod.Kd);
        Tensor teacherLogits;
        using (no_grad())
        {
            var zl = GenRecalLossStep.Hidden(teacher, teacherBatch);                             // [B, Tl, Dt]
            teacherLogits = teacher.Head(AnswerRows.Gather(zl, tPaired));                        // [N, Vt]
        }
        var zs = GenRecalLossStep.Hidden(student, studentBatch);                                 // [B, Ts, Ds]
        var ce = GenRecalLossStep.StudentCrossEntropy(student, zs, studentBatch, sRows);
        var studentPaired = student.Head(AnswerRows.Gather(zs, sPaired));                        // [N, Vs]
        var all = ones(tPaired.Length, ScalarType.Bool);
        var w = config.LossWeights;
        if (method == DistillationMethod.Kd)
        {
            var kl = DistillationLosses.ForwardKl(teacherLogits, studentPaired, all, config.KlTemperature);
            return new LossTerms(ce * w.CeStudent + kl * w.Kl) { CeStudent = ce, Kl = kl }.MoveToOuterDisposeScope();
        }
        var uld = DistillationLosses.UldSortedL1(teacherLogits, studentPaired, all);
        return new LossTerms(ce * w.CeStudent + uld * w.Uld) { CeStudent = ce, Uld = uld }.MoveToOuterDisposeScope();
    }
}
