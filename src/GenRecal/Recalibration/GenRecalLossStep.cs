using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// One forward pass of GenRecal on a batch pair (Algorithms 1-3), returning each loss term separately.
/// "Answer features" of a model are its hidden states at the positions that predict answer tokens
/// (start−1 … length−2), so the teacher's head on them is scored against the answer tokens
/// (start … length−1); the question part is everything before.
/// </summary>
public sealed class GenRecalLossStep(CausalLanguageModel teacher, CausalLanguageModel student, Recalibrator recalibrator, TrainingConfig config)
{
    /// <summary>The frozen teacher's dtype (float32, or BF16 for a BF16 checkpoint under mixed precision): the
    /// Recalibrator's output is cast to it before the teacher's head; the losses compute in float32 either way.</summary>
    readonly ScalarType teacherDtype = teacher.Dtype;

    /// <summary>Per-model view of a batch split into question and answer parts.</summary>
    public sealed record Split(int[] QuestionLengths, int[] AnswerStarts, int[] AnswerLengths, Tensor QuestionPositions, Tensor AnswerPositions);

    public static Split SplitOf(ModelBatch batch)
    {
        int b = batch.Lengths.Length;
        var qLen = batch.AnswerStart.Select(s => s - 1).ToArray();
        var aStart = qLen;
        var aLen = Enumerable.Range(0, b).Select(i => batch.Lengths[i] - batch.AnswerStart[i]).ToArray();
        var qPos = arange(0, Math.Max(1, qLen.Max()), ScalarType.Int64).unsqueeze(0).expand(b, -1);
        var aPos = stack(Enumerable.Range(0, b).Select(i => arange(aStart[i], aStart[i] + Math.Max(1, aLen.Max()), ScalarType.Int64)).ToArray());
        return new Split(qLen, aStart, aLen, qPos, aPos);
    }

    /// <summary>Rows [start, start+len) of h [B, T, ...] per example, right-padded to the longest → [B, maxLen, ...].</summary>
    public static Tensor Segments(Tensor h, int[] starts, int[] lengths, double padValue = 0)
    {
        using var scope = NewDisposeScope();
        int max = Math.Max(1, lengths.Max());
        var rows = new Tensor[starts.Length];
        for (int i = 0; i < starts.Length; i++)
        {
            var part = h[i].narrow(0, starts[i], lengths[i]);
            var padShape = part.shape.ToArray();
            padShape[0] = max - lengths[i];
            rows[i] = cat([part, full(padShape, padValue, dtype: h.dtype)], 0);
        }
        return stack(rows).MoveToOuterDisposeScope();
    }

    public static Tensor Hidden(CausalLanguageModel model, ModelBatch batch) => EmbedsAndHidden(model, batch).Hidden;

    /// <summary>A model's input embeddings for the batch and its last hidden states over them (with the family's own
    /// positions): the pass the teacher's features are cut from.</summary>
    public static (Tensor Embeds, Tensor Hidden) EmbedsAndHidden(CausalLanguageModel model, ModelBatch batch)
    {
        var embeds = InputEmbeds(model, batch);
        return (embeds, model.Body(embeds, batch.AttentionMask, Positions(model, batch)));
    }

    public static Tensor InputEmbeds(CausalLanguageModel model, ModelBatch batch) => model.EmbedInputs(batch.InputIds, batch.Pixels, batch.Grids);

    /// <summary>The family's own position ids (Qwen2-VL's M-RoPE), or null for positions from the padding mask.</summary>
    public static Tensor? Positions(CausalLanguageModel model, ModelBatch batch) => model.PositionIds(batch.InputIds, batch.AttentionMask, batch.Grids);

    /// <summary>
    /// The rows of the flattened answer part [B·La] that are scored (their answer token is trained; −100 marks padding
    /// and other turns), [N] int64, and their targets [N]: only these rows go through the teacher's head.
    /// </summary>
    public static (Tensor Rows, Tensor Targets) ScoredRows(ModelBatch teacherBatch, Split t)
    {
        using var scope = NewDisposeScope();
        // gt_l: the answer tokens each answer position predicts
        var gt = Segments(teacherBatch.Labels, [.. t.AnswerStarts.Select(a => a + 1)], t.AnswerLengths, DistillationLosses.IgnoreIndex).reshape(-1); // [B*La]
        var rows = gt.ne(DistillationLosses.IgnoreIndex).nonzero().reshape(-1);                 // [N]
        return (rows.MoveToOuterDisposeScope(), gt.index_select(0, rows).MoveToOuterDisposeScope());
    }

    /// <summary>The loss terms for <paramref name="stage"/> (1 or 2) and their weighted sum. <paramref name="teacherFeatures"/>:
    /// the teacher's part read from a store; null runs the teacher now (<see cref="TeacherFeatures.Compute"/>).</summary>
    public LossTerms Compute(ModelBatch teacherBatch, ModelBatch studentBatch, Stage stage, TeacherFeatures? teacherFeatures = null)
    {
        using var scope = NewDisposeScope();
        var t = SplitOf(teacherBatch);
        var s = SplitOf(studentBatch);
        var tf = teacherFeatures ?? TeacherFeatures.Compute(teacher, teacherBatch, config.Recalibrator.AnswerSource, config.KlTemperature);
        var (rows, targets) = ScoredRows(teacherBatch, t);                                        // [N], [N]
        if (tf.Targets.Rows != rows.shape[0])
            throw new ArgumentException($"the teacher's features score {tf.Targets.Rows} answer rows; the batch has {rows.shape[0]}");

        var zs = Hidden(student, studentBatch);                                                   // [B, Ts, Ds]
        var zqs = Segments(zs, [.. s.QuestionLengths.Select(_ => 0)], s.QuestionLengths);          // [B, Lq_s, Ds]
        var answerIn = recalibrator.Project(tf.AnswerInput);                                       // [B, La, Ds]
        var r = recalibrator.Forward(zqs, s.QuestionLengths, s.QuestionPositions, answerIn, t.AnswerLengths, t.AnswerPositions); // [B, La, Dt]
        var recalLogits = TeacherHead(ScoredOf(r, rows));                                         // [N, Vt]
        var ceRecal = DistillationLosses.CrossEntropy(recalLogits, targets);
        var kl = DistillationLosses.ForwardKl(tf.Targets, recalLogits, config.KlTemperature);
        var w = config.LossWeights;
        var loss = ceRecal * w.CeRecal + kl * w.Kl;
        Tensor? regCe = null, regKl = null, ceStudent = null;
        if (config.RunsRegularizer(stage))
        {
            // Algorithm 2: the teacher's own question features through Proj-pre keep the bridge near the teacher's space
            var r2 = recalibrator.Forward(recalibrator.Project(tf.Question), t.QuestionLengths, t.QuestionPositions, answerIn, t.AnswerLengths, t.AnswerPositions);
            var regLogits = TeacherHead(ScoredOf(r2, rows));                                      // [N, Vt]
            regCe = DistillationLosses.CrossEntropy(regLogits, targets);
            regKl = DistillationLosses.ForwardKl(tf.Targets, regLogits, config.KlTemperature);
            loss = loss + regCe * w.RegCe + regKl * w.RegKl;
        }
        if (stage == Stage.Distillation)
        {
            ceStudent = StudentCrossEntropy(student, zs, studentBatch);
            loss = loss + ceStudent * w.CeStudent;
        }
        return new LossTerms(loss) { CeRecal = ceRecal, Kl = kl, RegCe = regCe, RegKl = regKl, CeStudent = ceStudent }.MoveToOuterDisposeScope();
    }

    Tensor TeacherHead(Tensor rows) => teacher.Head(rows.dtype == teacherDtype ? rows : rows.to(teacherDtype));

    /// <summary>The scored rows of answer features [B, La, D] → [N, D].</summary>
    static Tensor ScoredOf(Tensor answer, Tensor rows) => answer.reshape(-1, answer.shape[2]).index_select(0, rows);

    /// <summary>
    /// The student's next-token CE over its trained tokens, with the LM head run on the rows that predict them only
    /// (the question's rows would be computed and then ignored: most of the head's cost at short answers).
    /// Equal to <see cref="DistillationLosses.NextTokenCrossEntropy"/> on the full logits.
    /// </summary>
    public static Tensor StudentCrossEntropy(CausalLanguageModel student, Tensor hidden, ModelBatch batch, Baselines.AnswerRows? answerRows = null)
    {
        using var scope = NewDisposeScope();
        var rows = (answerRows ?? Baselines.AnswerRows.Of(batch)).Flat;
        var logits = student.Head(Baselines.AnswerRows.Gather(hidden, rows));                      // [N, V]
        return DistillationLosses.CrossEntropy(logits, Baselines.AnswerRows.Targets(batch, rows)).MoveToOuterDisposeScope();
    }

    /// <summary>Stage 3 and the SFT baseline: the student's own next-token loss.</summary>
    public static LossTerms StudentOnly(CausalLanguageModel student, ModelBatch batch)
    {
        using var scope = NewDisposeScope();
        var ce = StudentCrossEntropy(student, Hidden(student, batch), batch);
        return new LossTerms(ce) { CeStudent = ce.alias() }.MoveToOuterDisposeScope();
    }
}
