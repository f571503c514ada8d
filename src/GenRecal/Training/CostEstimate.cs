using GenRecal.Models;

namespace GenRecal.Training;

/// <summary>One example's lengths as the recipe's steps see them (GenRecalLossStep.SplitOf): the question part is the
/// tokens before the position that predicts the first answer token, the answer part the positions from there on.</summary>
public readonly record struct ExampleLengths(int StudentQuestion, int StudentAnswer, int TeacherQuestion, int TeacherAnswer)
{
    public static ExampleLengths Of(Tokenization.EncodedChat student, Tokenization.EncodedChat teacher) =>
        new(student.FirstAnswerStart - 1, student.Ids.Length - student.FirstAnswerStart, teacher.FirstAnswerStart - 1, teacher.Ids.Length - teacher.FirstAnswerStart);
}

/// <summary>
/// What GenRecal costs against SFT for a teacher/student pair, estimated from the two language models' configs and each
/// example's lengths before anything is trained: matmul FLOPs (2 per multiply-add) of every linear layer, the heads on the
/// rows that are scored, and attention's q·kᵀ and p·v over all keys (the eager path computes the whole square). Norms,
/// rotary, softmax, the losses and the optimizer are not counted, nor are the vision encoders (they run forward only, in
/// every arm alike). A backward pass costs twice its forward where weights train and once where only input gradients
/// flow (frozen layers between a loss and a trained part); a frozen part with no trained part behind it has none.
/// Per example; "relative" figures divide by a student SFT step on the same example. At small widths per-op overheads,
/// which FLOPs do not see, weigh more: bench/ `arms` prints this estimate beside the measured ratio.
/// </summary>
public sealed record CostEstimate
{
    /// <summary>The Recalibrator's parameters: Proj-pre, its blocks (the student's block configuration), Proj-post, LayerNorm.</summary>
    public required long RecalibratorParameters { get; init; }
    /// <summary>FLOPs of one SFT step (stage 3, the SFT baseline) on an average example.</summary>
    public required double Sft { get; init; }
    /// <summary>Stage 1: the frozen student's forward, the Recalibrator's two passes trained, the teacher's head twice.</summary>
    public required double Stage1 { get; init; }
    /// <summary>Stage 2 as configured (regularizer and Recalibrator training per the config).</summary>
    public required double Stage2 { get; init; }
    /// <summary>The part of <see cref="Stage2"/> that is Algorithm 2 (zero where it does not run in stage 2).</summary>
    public required double Stage2Regularizer { get; init; }
    /// <summary>The teacher's forward and its head on the answer rows: once per example with the feature store, on every
    /// stage-1 and stage-2 step when the teacher runs live.</summary>
    public required double TeacherPass { get; init; }

    /// <summary>Wall-time-like ratio of the GenRecal arm (stages 1-3 at <paramref name="config"/>'s steps and batch) to an SFT
    /// arm of the same student steps (stages 2 + 3), with the teacher pass over <paramref name="examples"/> examples paid
    /// once (<paramref name="pass"/> true) or already paid by another run (false).</summary>
    public double ArmRatio(TrainingConfig config, int examples, bool pass)
    {
        double batch = config.BatchSize * config.GradAccumulation;
        double genrecal = batch * (config.StepsFor(1) * Stage1 + config.StepsFor(2) * Stage2 + config.StepsFor(3) * Sft) + (pass ? examples * TeacherPass : 0);
        double sft = batch * (config.StepsFor(2) + config.StepsFor(3)) * Sft;
        return sft == 0 ? double.NaN : genrecal / sft;
    }

    public static CostEstimate Of(LanguageModelConfig teacher, LanguageModelConfig student, TrainingConfig config, IReadOnlyCollection<ExampleLengths> examples)
    {
        if (examples.Count == 0) throw new ArgumentException("a cost estimate needs at least one example");
        int blocks = config.Recalibrator.NumLayers;
        bool recalibratorTrains = config.TrainRecalibratorInStage2;
        bool regularizerInStage2 = config.RegularizerInStage2 && recalibratorTrains; // as GenRecalLossStep runs it
        double ht = teacher.HiddenSize, hs = student.HiddenSize;
        double sft = 0, stage1 = 0, stage2 = 0, reg2 = 0, pass = 0;
        foreach (var e in examples)
        {
            int studentTokens = e.StudentQuestion + e.StudentAnswer, teacherTokens = e.TeacherQuestion + e.TeacherAnswer;
            double studentBody = Body(student, studentTokens), studentHead = Head(student, e.StudentAnswer);
            // the teacher's frozen head on the scored answer rows, forward and the gradient to its input
            double teacherHead = 2 * Head(teacher, e.TeacherAnswer);
            // one Recalibrator pass over a question of q rows: Proj-pre on the teacher's answer (and, for the
            // regularizer, question) rows, the blocks, Proj-post on the answer rows
            double Pass(int question, bool teacherQuestion) =>
                2 * ht * hs * (e.TeacherAnswer + (teacherQuestion ? question : 0)) + Recalibrator(student, blocks, question, e.TeacherAnswer) + 2 * hs * ht * e.TeacherAnswer;
            double studentPass = Pass(e.StudentQuestion, false), regularizerPass = Pass(e.TeacherQuestion, true);

            double sftStep = 3 * (studentBody + studentHead);
            sft += sftStep;
            stage1 += studentBody + 3 * studentPass + 3 * regularizerPass + 2 * teacherHead;
            double reg = regularizerInStage2 ? 3 * regularizerPass + teacherHead : 0;
            stage2 += sftStep + (recalibratorTrains ? 3 : 2) * studentPass + teacherHead + reg;
            reg2 += reg;
            pass += Body(teacher, teacherTokens) + Head(teacher, e.TeacherAnswer);
        }
        int n = examples.Count;
        return new CostEstimate
        {
            RecalibratorParameters = RecalibratorParameterCount(teacher, student, blocks),
            Sft = sft / n, Stage1 = stage1 / n, Stage2 = stage2 / n, Stage2Regularizer = reg2 / n, TeacherPass = pass / n,
        };
    }

    /// <summary>Proj-pre (with bias), the blocks, Proj-post (with bias) and the LayerNorm (weight and bias).</summary>
    public static long RecalibratorParameterCount(LanguageModelConfig teacher, LanguageModelConfig student, int blocks)
    {
        long ht = teacher.HiddenSize, hs = student.HiddenSize;
        return ht * hs + hs + blocks * BlockParameters(student) + hs * ht + ht + 2 * ht;
    }

    static long BlockParameters(LanguageModelConfig c)
    {
        long h = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        long attention = h * q + 2 * h * kv + q * h + (c.AttentionBias ? q + 2 * kv : 0);
        return attention + 3 * h * c.IntermediateSize + 2 * h;
    }

    /// <summary>Forward FLOPs of one row through a block's linear layers.</summary>
    static double BlockLinearPerRow(LanguageModelConfig c)
    {
        double h = c.HiddenSize, q = (double)c.NumAttentionHeads * c.HeadDim, kv = (double)c.NumKeyValueHeads * c.HeadDim;
        return 2 * (h * q + 2 * h * kv + q * h + 3 * h * c.IntermediateSize);
    }

    /// <summary>q·kᵀ and p·v of <paramref name="queries"/> rows against <paramref name="keys"/> keys.</summary>
    static double Attention(LanguageModelConfig c, double queries, double keys) => 2 * 2 * queries * keys * c.NumAttentionHeads * c.HeadDim;

    /// <summary>A decoder's body over a causal sequence of t tokens.</summary>
    static double Body(LanguageModelConfig c, int t) => c.NumHiddenLayers * (t * BlockLinearPerRow(c) + Attention(c, t, t));

    static double Head(LanguageModelConfig c, int rows) => 2.0 * c.HiddenSize * c.VocabSize * rows;

    /// <summary>The Recalibrator's blocks over [question, answer]: every block but the last on all rows; the last computes
    /// the question's keys and values only and runs in full on the answer rows (Recalibration.Recalibrator.Forward).</summary>
    static double Recalibrator(LanguageModelConfig s, int blocks, int question, int answer)
    {
        int t = question + answer;
        double kvPerRow = 2 * 2.0 * s.HiddenSize * s.NumKeyValueHeads * s.HeadDim;
        return (blocks - 1) * (t * BlockLinearPerRow(s) + Attention(s, t, t)) + question * kvPerRow + answer * BlockLinearPerRow(s) + Attention(s, answer, t);
    }
}
