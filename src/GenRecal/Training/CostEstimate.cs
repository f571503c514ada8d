using GenRecal.Models;
using GenRecal.Tokenization;

namespace GenRecal.Training;

/// <summary>One example's lengths as the recipe's steps see them (GenRecalLossStep.SplitOf), after the collator's cut at
/// max_length: all its tokens; the question part, the tokens before the position that predicts the first answer token;
/// the answer part, the positions from there on; and the scored rows, those whose next token is trained (label ≠ −100),
/// the only rows the heads run on.</summary>
public readonly record struct ExampleLengths(int StudentQuestion, int StudentAnswer, int StudentScored, int TeacherQuestion, int TeacherAnswer, int TeacherScored)
{
    public int StudentTokens => StudentQuestion + StudentAnswer + 1;
    public int TeacherTokens => TeacherQuestion + TeacherAnswer + 1;

    public static ExampleLengths Of(EncodedChat student, EncodedChat teacher, int maxLength)
    {
        var (sq, sa, ss) = Split(student, maxLength);
        var (tq, ta, ts) = Split(teacher, maxLength);
        return new(sq, sa, ss, tq, ta, ts);
    }

    static (int Question, int Answer, int Scored) Split(EncodedChat e, int maxLength)
    {
        int length = Math.Min(e.Ids.Length, maxLength);
        return (e.FirstAnswerStart - 1, length - e.FirstAnswerStart, e.Labels.Take(length).Count(l => l != EncodedChat.IgnoreIndex));
    }
}

/// <summary>Where the teacher's stage-1/2 work is paid, for <see cref="CostEstimate.ArmRatio"/>.</summary>
public enum TeacherWork
{
    /// <summary>The feature store was filled by another run (an arm, variant or seed of the same teacher and data).</summary>
    StoreReused,
    /// <summary>This run fills the store: one teacher pass over the data.</summary>
    StoreFilled,
    /// <summary>No store: the teacher runs on every stage-1 and stage-2 example.</summary>
    Live,
}

/// <summary>
/// What GenRecal costs against SFT for a teacher/student pair, estimated from the two language models' configs and each
/// example's lengths before anything is trained: matmul FLOPs (2 per multiply-add) of every linear layer, the heads on
/// the scored rows, and attention's q·kᵀ and p·v over all keys (the eager path computes the whole square). Norms, rotary,
/// softmax, the losses and the optimizer are not counted, nor are the vision encoders (they run forward only, in every arm
/// alike). Backward: a linear layer's gradient to its input costs one forward, its weight gradient another, each
/// counted only where it is computed (the input's where anything upstream trains, the weight's where it trains);
/// attention's two products give both operands a gradient, two forwards, wherever a gradient passes through them.
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
    /// <summary>The teacher's forward and its head on the scored answer rows, for one example.</summary>
    public required double TeacherPass { get; init; }

    /// <summary>The GenRecal arm (stages 1-3 at <paramref name="config"/>'s steps and batch) against an SFT arm of the same
    /// student steps (stages 2 + 3), with the teacher's work paid as <paramref name="teacher"/> says (the store's pass goes
    /// over <paramref name="storedExamples"/> examples); null where the config has no student steps.</summary>
    public double? ArmRatio(TrainingConfig config, int storedExamples, TeacherWork teacher)
    {
        double batch = config.BatchSize * config.GradAccumulation;
        double teacherSteps = config.StepsFor(1) + config.StepsFor(2);
        double teacherWork = teacherSteps == 0 ? 0 : teacher switch
        {
            TeacherWork.StoreFilled => storedExamples * TeacherPass,
            TeacherWork.Live => batch * teacherSteps * TeacherPass,
            _ => 0,
        };
        double genrecal = batch * (config.StepsFor(1) * Stage1 + config.StepsFor(2) * Stage2 + config.StepsFor(3) * Sft) + teacherWork;
        double sft = batch * (config.StepsFor(2) + config.StepsFor(3)) * Sft;
        return sft == 0 ? null : genrecal / sft;
    }

    public static CostEstimate Of(LanguageModelConfig teacher, LanguageModelConfig student, TrainingConfig config, IReadOnlyCollection<ExampleLengths> examples)
    {
        if (examples.Count == 0) throw new ArgumentException("a cost estimate needs at least one example");
        int blocks = config.Recalibrator.NumLayers;
        bool recalibratorTrains = config.RecalibratorTrains(Stage.Distillation);
        bool regularizerInStage2 = config.RunsRegularizer(Stage.Distillation);
        // the student's head gets a weight gradient in stage 2 where ParameterGroups trains it, or where it is tied to the
        // embedding, which is the body's
        bool headTrainsInStage2 = student.TieWordEmbeddings || ParameterGroups.StudentComponents(Stage.Distillation, config).Contains(ModelComponent.Head);
        double ht = teacher.HiddenSize, hs = student.HiddenSize;
        double sft = 0, stage1 = 0, stage2 = 0, regularizer2 = 0, teacherPass = 0;
        foreach (var e in examples)
        {
            double studentBody = DecoderForward(student, e.StudentTokens, 0), studentHead = Head(student, e.StudentScored);
            // the teacher's frozen head on the scored rows: forward and the gradient to its input
            double teacherHead = 2 * Head(teacher, e.TeacherScored);
            // Proj-pre takes teacher tensors (no input gradient): forward, and its weight gradient where it trains. The answer
            // part is projected once per step and shared by both passes; the regularizer also projects the teacher's question
            double projectAnswer = 2 * ht * hs * e.TeacherAnswer, projectQuestion = 2 * ht * hs * e.TeacherQuestion;
            var studentPass = RecalibratorForward(student, blocks, e.StudentQuestion, e.TeacherAnswer);
            var regularizerPass = RecalibratorForward(student, blocks, e.TeacherQuestion, e.TeacherAnswer);
            double projectOut = 2 * hs * ht * e.TeacherAnswer; // Proj-post on the answer rows
            // a trained pass: every linear's input and weight gradients; the first block's input gradient is skipped where
            // nothing upstream trains, a saving this estimate does not count
            double Trained(RecalibratorFlops p) => 3 * (p.Linear + p.Attention + projectOut);
            double sftStep = 3 * (studentBody + studentHead);
            sft += sftStep;
            stage1 += studentBody + 2 * projectAnswer + Trained(studentPass) + 2 * projectQuestion + Trained(regularizerPass) + 2 * teacherHead;
            double reg = regularizerInStage2 ? 2 * projectQuestion + Trained(regularizerPass) + teacherHead : 0;
            // frozen: linears forward and input gradient (2x), attention 3x, Proj-pre forward only
            double student2 = recalibratorTrains ? 2 * projectAnswer + Trained(studentPass)
                                                 : projectAnswer + 2 * (studentPass.Linear + projectOut) + 3 * studentPass.Attention;
            stage2 += 3 * studentBody + (headTrainsInStage2 ? 3 : 2) * studentHead + student2 + teacherHead + reg;
            regularizer2 += reg;
            teacherPass += DecoderForward(teacher, e.TeacherTokens, 0) + Head(teacher, e.TeacherScored);
        }
        int n = examples.Count;
        return new CostEstimate
        {
            RecalibratorParameters = RecalibratorParameterCount(teacher, student, blocks),
            Sft = sft / n, Stage1 = stage1 / n, Stage2 = stage2 / n, Stage2Regularizer = regularizer2 / n, TeacherPass = teacherPass / n,
        };
    }

    /// <summary>Proj-pre (with bias), the blocks, Proj-post (with bias) and the LayerNorm (weight and bias).</summary>
    public static long RecalibratorParameterCount(LanguageModelConfig teacher, LanguageModelConfig student, int blocks)
    {
        long ht = teacher.HiddenSize, hs = student.HiddenSize;
        return ht * hs + hs + blocks * BlockParameters(student) + hs * ht + ht + 2 * ht;
    }

    /// <summary>Forward FLOPs of a decoder over a causal sequence of <paramref name="tokens"/> tokens, its head on
    /// <paramref name="headRows"/> of them.</summary>
    public static double DecoderForward(LanguageModelConfig c, int tokens, int headRows) =>
        c.NumHiddenLayers * (tokens * BlockLinearPerRow(c) + Attention(c, tokens, tokens)) + Head(c, headRows);

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

    static double Head(LanguageModelConfig c, int rows) => 2.0 * c.HiddenSize * c.VocabSize * rows;

    readonly record struct RecalibratorFlops(double Linear, double Attention);

    /// <summary>The Recalibrator's blocks over [question, answer]: every block but the last on all rows; the last computes
    /// the question's keys and values only and runs in full on the answer rows (Recalibration.Recalibrator.Forward).</summary>
    static RecalibratorFlops RecalibratorForward(LanguageModelConfig s, int blocks, int question, int answer)
    {
        int t = question + answer;
        double kvPerRow = 2 * 2.0 * s.HiddenSize * s.NumKeyValueHeads * s.HeadDim;
        return new((blocks - 1) * t * BlockLinearPerRow(s) + question * kvPerRow + answer * BlockLinearPerRow(s),
                   (blocks - 1) * Attention(s, t, t) + Attention(s, answer, t));
    }
}
