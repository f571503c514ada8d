using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Tests.Training;

public class CostEstimateTests
{
    static readonly LanguageModelConfig Teacher = TestSupport.TinyText(vocab: 300, hidden: 40, layers: 3, heads: 4, kvHeads: 2);

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    public void The_recalibrator_parameter_count_is_the_built_modules(bool bias, int blocks)
    {
        var student = TestSupport.TinyText(vocab: 100, hidden: 24, layers: 2, heads: 4, kvHeads: 2, bias: bias);
        var rec = new Recalibrator(new RecalibratorConfig { NumLayers = blocks }, student, Teacher.HiddenSize);
        Assert.Equal(rec.parameters().Sum(p => p.numel()), CostEstimate.RecalibratorParameterCount(Teacher, student, blocks));
    }

    /// <summary>The paper's Recalibrator sizes (GenRecal §4: about 525M parameters for a Qwen2-VL-7B student, 503M for
    /// InternVL2.5-8B), from the published configs of the students' language models and their teachers' widths.</summary>
    [Fact]
    public void The_papers_recalibrator_sizes_follow_from_the_real_configs()
    {
        // Qwen2-VL-7B-Instruct's text config; its teacher Qwen2-VL-72B is 8192 wide
        var qwen2vl7b = new LanguageModelConfig { VocabSize = 152064, HiddenSize = 3584, IntermediateSize = 18944, NumHiddenLayers = 28, NumAttentionHeads = 28, NumKeyValueHeads = 4, HeadDim = 128, AttentionBias = true };
        // InternVL2.5-8B's InternLM2.5-7B-chat (no q/k/v bias); its teacher InternVL2.5-78B's Qwen2.5-72B is 8192 wide
        var internlm25 = new LanguageModelConfig { VocabSize = 92553, HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8, HeadDim = 128, AttentionBias = false };
        var wide = new LanguageModelConfig { HiddenSize = 8192 };
        Assert.Equal(525, Math.Round(CostEstimate.RecalibratorParameterCount(wide, qwen2vl7b, 2) / 1e6));
        Assert.Equal(503, Math.Round(CostEstimate.RecalibratorParameterCount(wide, internlm25, 2) / 1e6));
    }

    [Fact]
    public void Example_lengths_are_what_the_collator_and_the_loss_step_give_after_the_cut_at_max_length()
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root));
        using var student = Pretrained.Load(TinyPair.Student(root));
        var data = LlavaDataset.LoadStrict(TinyPair.WriteData(root));
        using var full = new Collator(student.Model, student.Tokenizer, 512);
        using var teacherFull = new Collator(teacher.Model, teacher.Tokenizer, 512);
        // a limit inside some answers: every question fits, some answers are cut
        int maxLength = data.Max(e => Math.Max(full.Encode(e).FirstAnswerStart, teacherFull.Encode(e).FirstAnswerStart)) + 1;
        Assert.Contains(data, e => full.Encode(e).Ids.Length > maxLength || teacherFull.Encode(e).Ids.Length > maxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, maxLength);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, maxLength);
        foreach (var ex in data)
        {
            var l = ExampleLengths.Of(sc.Encode(ex), tc.Encode(ex), maxLength);
            using var sb = sc.Collate([ex]);
            using var tb = tc.Collate([ex]);
            var s = GenRecalLossStep.SplitOf(sb);
            var t = GenRecalLossStep.SplitOf(tb);
            Assert.Equal((sb.Lengths[0], s.QuestionLengths[0], s.AnswerLengths[0]), (l.StudentTokens, l.StudentQuestion, l.StudentAnswer));
            Assert.Equal((tb.Lengths[0], t.QuestionLengths[0], t.AnswerLengths[0]), (l.TeacherTokens, l.TeacherQuestion, l.TeacherAnswer));
            // the rows each head runs on: the student's CE rows and the teacher's scored rows
            Assert.Equal(GenRecal.Baselines.AnswerRows.Of(sb).Flat.Length, l.StudentScored);
            Assert.Equal(GenRecalLossStep.ScoredRows(tb, t).Rows.shape[0], l.TeacherScored);
        }
    }

    /// <summary>Forward FLOPs of a module's linear layers over <paramref name="rows"/> rows, read from the built weights'
    /// shapes [out, in]: 2 per multiply-add.</summary>
    static double Linears(nn.Module module, double rows, Func<string, bool>? which = null) =>
        module.named_modules().Where(m => m.module is Linear && (which?.Invoke(m.name) ?? true))
            .Sum(m => 2.0 * rows * ((Linear)m.module).weight!.shape[0] * ((Linear)m.module).weight!.shape[1]);

    /// <summary>
    /// Each stage against a count over the built modules' weight shapes, with what trains in each stage read from the
    /// recipe's own ParameterGroups: a linear layer's forward costs 2·rows·in·out, its input gradient as much again where a
    /// gradient flows through it, its weight gradient as much again where the weight trains; attention's two products
    /// cost their forward three times wherever a gradient passes.
    /// </summary>
    [Theory]
    [InlineData(true, 2)]
    [InlineData(false, 1)]
    [InlineData(false, 3)]
    public void Each_stage_counts_what_the_built_modules_compute(bool tiedStudentHead, int blocks)
    {
        var student = TestSupport.TinyText(vocab: 100, hidden: 24, layers: 2, heads: 4, kvHeads: 2, bias: false, tie: tiedStudentHead);
        manual_seed(0);
        using var studentModel = new CausalLanguageModel(student);
        using var teacherModel = new CausalLanguageModel(Teacher);
        var recalibratorConfig = new RecalibratorConfig { NumLayers = blocks };
        using var rec = new Recalibrator(recalibratorConfig, student, Teacher.HiddenSize);
        var e = new ExampleLengths(StudentQuestion: 11, StudentAnswer: 3, StudentScored: 2, TeacherQuestion: 17, TeacherAnswer: 5, TeacherScored: 4);

        double Attention(LanguageModelConfig c, double queries, double keys) => 4 * queries * keys * c.NumAttentionHeads * c.HeadDim;
        double Body(CausalLanguageModel m, LanguageModelConfig c, int t) => Linears(m, t, n => !n.StartsWith("lm_head")) + c.NumHiddenLayers * Attention(c, t, t);
        double Head(CausalLanguageModel m, LanguageModelConfig c, int rows) => 2.0 * rows * c.HiddenSize * m.Head(zeros(1, c.HiddenSize)).shape[1];
        string last = $"layers.{blocks - 1}.";
        bool LastKv(string n) => n.StartsWith(last) && (n.Contains("k_proj") || n.Contains("v_proj"));
        // the Recalibrator's blocks as Recalibrator.Forward runs them, linears and attention apart; Proj-pre and Proj-post apart
        (double Linear, double Attention) Blocks(int question)
        {
            int t = question + e.TeacherAnswer;
            return (Linears(rec, t, n => n.StartsWith("layers.") && !n.StartsWith(last)) + Linears(rec, t - e.TeacherAnswer, LastKv) + Linears(rec, e.TeacherAnswer, n => n.StartsWith(last)),
                    (blocks - 1) * Attention(student, t, t) + Attention(student, e.TeacherAnswer, t));
        }
        double ProjPre(int rows) => Linears(rec, rows, n => n == "proj_pre");
        double ProjPost = Linears(rec, e.TeacherAnswer, n => n == "proj_post");
        double studentForward = Body(studentModel, student, e.StudentTokens);
        double studentHead = Head(studentModel, student, e.StudentScored);
        double teacherHead = 2 * Head(teacherModel, Teacher, e.TeacherScored); // frozen: forward and the input's gradient

        double StageCost(Stage stage, TrainingConfig config, bool regularizer)
        {
            ParameterGroups.Configure(stage, studentModel, rec, teacherModel, config);
            bool bodyTrains = studentModel.model.layers[0].self_attn.q_proj.weight!.requires_grad;
            bool headTrains = (studentModel.lm_head?.weight ?? studentModel.model.embed_tokens.weight)!.requires_grad;
            bool recTrains = rec.proj_post.weight!.requires_grad;
            // linears: forward, input gradient where a gradient reaches them, weight gradient where they train
            double Lin(double forward, bool input, bool weight) => forward * (1 + (input ? 1 : 0) + (weight ? 1 : 0));
            var (sl, sa) = Blocks(e.StudentQuestion);
            double cost = Lin(studentForward - student.NumHiddenLayers * Attention(student, e.StudentTokens, e.StudentTokens), bodyTrains, bodyTrains)
                        + student.NumHiddenLayers * Attention(student, e.StudentTokens, e.StudentTokens) * (bodyTrains ? 3 : 1)
                        + Lin(ProjPre(e.TeacherAnswer), false, recTrains)
                        + Lin(sl + ProjPost, true, recTrains) + 3 * sa + teacherHead;
            if (stage == Stage.Distillation) cost += Lin(studentHead, true, headTrains);
            if (regularizer)
            {
                var (rl, ra) = Blocks(e.TeacherQuestion);
                cost += Lin(ProjPre(e.TeacherQuestion), false, recTrains) + Lin(rl + ProjPost, true, recTrains) + 3 * ra + teacherHead;
            }
            return cost;
        }

        var joint = new TrainingConfig { Recalibrator = recalibratorConfig, TrainRecalibratorInStage2 = true };
        var estimate = CostEstimate.Of(Teacher, student, joint, [e]);
        Assert.Equal(3 * (studentForward + studentHead), estimate.Sft, 6);
        Assert.Equal(StageCost(Stage.Alignment, joint, regularizer: true), estimate.Stage1, 6);
        Assert.Equal(StageCost(Stage.Distillation, joint, regularizer: true), estimate.Stage2, 6);
        Assert.Equal(StageCost(Stage.Distillation, joint, regularizer: true) - StageCost(Stage.Distillation, joint, regularizer: false), estimate.Stage2Regularizer, 6);
        Assert.Equal(Body(teacherModel, Teacher, e.TeacherTokens) + Head(teacherModel, Teacher, e.TeacherScored), estimate.TeacherPass, 6);

        // frozen in stage 2: the regularizer does not run (it could train nothing)
        var frozenConfig = joint with { TrainRecalibratorInStage2 = false };
        var frozen = CostEstimate.Of(Teacher, student, frozenConfig, [e]);
        Assert.Equal(StageCost(Stage.Distillation, frozenConfig, regularizer: false), frozen.Stage2, 6);
        Assert.Equal(0, frozen.Stage2Regularizer);
        var noRegularizer = CostEstimate.Of(Teacher, student, joint with { RegularizerInStage2 = false }, [e]);
        Assert.Equal(estimate.Stage2 - estimate.Stage2Regularizer, noRegularizer.Stage2, 6);
        Assert.Equal(estimate.Stage1, noRegularizer.Stage1, 6);
    }

    [Fact]
    public void The_arm_ratio_weighs_each_stage_by_its_steps_against_sft_on_the_student_steps()
    {
        var student = TestSupport.TinyText(vocab: 100, hidden: 24, layers: 2, heads: 4, kvHeads: 2);
        ExampleLengths[] examples = [new(11, 3, 3, 17, 5, 4), new(20, 1, 1, 31, 2, 2)];
        var e = CostEstimate.Of(Teacher, student, new TrainingConfig(), examples);
        // averages over the examples: each is the mean of the one-example estimates
        var each = examples.Select(x => CostEstimate.Of(Teacher, student, new TrainingConfig(), [x])).ToList();
        Assert.Equal(each.Average(x => x.Stage2), e.Stage2, 6);
        Assert.Equal(each.Average(x => x.TeacherPass), e.TeacherPass, 6);

        var config = new TrainingConfig { Steps = new() { [1] = 100, [2] = 300, [3] = 200 }, BatchSize = 4, GradAccumulation = 2 };
        double sftArm = (300 + 200) * 8 * e.Sft, students = 8 * (100 * e.Stage1 + 300 * e.Stage2 + 200 * e.Sft);
        Assert.Equal(students / sftArm, e.ArmRatio(config, 1000, TeacherWork.StoreReused)!.Value, 9);
        Assert.Equal((students + 1000 * e.TeacherPass) / sftArm, e.ArmRatio(config, 1000, TeacherWork.StoreFilled)!.Value, 9);
        Assert.Equal((students + 8 * 400 * e.TeacherPass) / sftArm, e.ArmRatio(config, 1000, TeacherWork.Live)!.Value, 9);
        // stage 3 alone is SFT, and needs no teacher however it would be paid
        foreach (var work in Enum.GetValues<TeacherWork>())
            Assert.Equal(1, e.ArmRatio(new TrainingConfig { Steps = new() { [3] = 50 } }, 1000, work)!.Value, 9);
        // no student steps: no ratio
        Assert.Null(e.ArmRatio(new TrainingConfig { Steps = new() { [1] = 50 } }, 1000, TeacherWork.StoreFilled));
        Assert.Throws<ArgumentException>(() => CostEstimate.Of(Teacher, student, new TrainingConfig(), []));
    }
}
