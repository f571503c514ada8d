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

    /// <summary>Forward FLOPs of a module's linear layers over <paramref name="rows"/> rows, read from the built weights'
    /// shapes [out, in]: 2 per multiply-add.</summary>
    static double Linears(nn.Module module, double rows, Func<string, bool>? which = null) =>
        module.named_modules().Where(m => m.module is Linear && (which?.Invoke(m.name) ?? true))
            .Sum(m => 2.0 * rows * ((Linear)m.module).weight!.shape[0] * ((Linear)m.module).weight!.shape[1]);

    [Fact]
    public void Each_stage_counts_what_the_built_modules_compute()
    {
        var student = TestSupport.TinyText(vocab: 100, hidden: 24, layers: 2, heads: 4, kvHeads: 2, bias: false, tie: true);
        manual_seed(0);
        using var studentModel = new CausalLanguageModel(student);
        using var teacherModel = new CausalLanguageModel(Teacher);
        using var rec = new Recalibrator(new RecalibratorConfig(), student, Teacher.HiddenSize);
        var e = new ExampleLengths(StudentQuestion: 11, StudentAnswer: 3, TeacherQuestion: 17, TeacherAnswer: 5);

        // attention's two products per query row and key, every head
        double Attention(LanguageModelConfig c, double queries, double keys) => 4 * queries * keys * c.NumAttentionHeads * c.HeadDim;
        // a decoder's body: every linear of its layers on every row (no head module inside), attention over all keys
        double Body(CausalLanguageModel m, LanguageModelConfig c, int t) =>
            Linears(m, t, n => !n.StartsWith("lm_head")) + c.NumHiddenLayers * Attention(c, t, t);
        double Head(LanguageModelConfig c, int rows) => 2.0 * rows * c.HiddenSize * c.VocabSize; // tied or not, hidden x vocabulary
        // the Recalibrator: block 0 on every row; the last block's k/v on every row and the rest on the answer rows only;
        // Proj-pre on the teacher rows it is given, Proj-post on the answer rows
        double Pass(int question, bool teacherQuestion)
        {
            int t = question + e.TeacherAnswer;
            return Linears(rec, t, n => n.StartsWith("layers.0.")) + Attention(student, t, t)
                 + Linears(rec, t, n => n.StartsWith("layers.1.") && (n.Contains("k_proj") || n.Contains("v_proj")))
                 + Linears(rec, e.TeacherAnswer, n => n.StartsWith("layers.1.") && !n.Contains("k_proj") && !n.Contains("v_proj")) + Attention(student, e.TeacherAnswer, t)
                 + Linears(rec, e.TeacherAnswer + (teacherQuestion ? question : 0), n => n == "proj_pre") + Linears(rec, e.TeacherAnswer, n => n == "proj_post");
        }
        int ts = e.StudentQuestion + e.StudentAnswer, tt = e.TeacherQuestion + e.TeacherAnswer;
        double studentForward = Body(studentModel, student, ts);
        double sft = 3 * (studentForward + Head(student, e.StudentAnswer));
        double teacherHead = 2 * Head(Teacher, e.TeacherAnswer); // frozen: forward and the gradient to its input
        double studentPass = Pass(e.StudentQuestion, false), regularizer = Pass(e.TeacherQuestion, true);

        var joint = CostEstimate.Of(Teacher, student, new TrainingConfig(), [e]);
        Assert.Equal(sft, joint.Sft, 6);
        // stage 1: the frozen student forward only; both passes train the Recalibrator (backward = 2 forwards); two heads
        Assert.Equal(studentForward + 3 * studentPass + 3 * regularizer + 2 * teacherHead, joint.Stage1, 6);
        // stage 2 (defaults: joint, regularizer on): an SFT step plus both stage-1 passes and heads
        Assert.Equal(sft + 3 * studentPass + 3 * regularizer + 2 * teacherHead, joint.Stage2, 6);
        Assert.Equal(3 * regularizer + teacherHead, joint.Stage2Regularizer, 6);
        Assert.Equal(Body(teacherModel, Teacher, tt) + Head(Teacher, e.TeacherAnswer), joint.TeacherPass, 6);

        // frozen in stage 2: no regularizer (it could train nothing), the student's pass only forward and input gradients
        var frozen = CostEstimate.Of(Teacher, student, new TrainingConfig { TrainRecalibratorInStage2 = false }, [e]);
        Assert.Equal(sft + 2 * studentPass + teacherHead, frozen.Stage2, 6);
        Assert.Equal(0, frozen.Stage2Regularizer);
        var noRegularizer = CostEstimate.Of(Teacher, student, new TrainingConfig { RegularizerInStage2 = false }, [e]);
        Assert.Equal(joint.Stage2 - joint.Stage2Regularizer, noRegularizer.Stage2, 6);
        Assert.Equal(joint.Stage1, noRegularizer.Stage1, 6);
    }

    [Fact]
    public void The_arm_ratio_weighs_each_stage_by_its_steps_against_sft_on_the_student_steps()
    {
        var student = TestSupport.TinyText(vocab: 100, hidden: 24, layers: 2, heads: 4, kvHeads: 2);
        ExampleLengths[] examples = [new(11, 3, 17, 5), new(20, 1, 31, 2)];
        var e = CostEstimate.Of(Teacher, student, new TrainingConfig(), examples);
        // averages over the examples: each is the mean of the one-example estimates
        var each = examples.Select(x => CostEstimate.Of(Teacher, student, new TrainingConfig(), [x])).ToList();
        Assert.Equal(each.Average(x => x.Stage2), e.Stage2, 6);
        Assert.Equal(each.Average(x => x.TeacherPass), e.TeacherPass, 6);

        var config = new TrainingConfig { Steps = new() { [1] = 100, [2] = 300, [3] = 200 }, BatchSize = 4, GradAccumulation = 2 };
        double sftArm = (300 + 200) * 8 * e.Sft;
        Assert.Equal((8 * (100 * e.Stage1 + 300 * e.Stage2 + 200 * e.Sft)) / sftArm, e.ArmRatio(config, 1000, pass: false), 9);
        Assert.Equal((8 * (100 * e.Stage1 + 300 * e.Stage2 + 200 * e.Sft) + 1000 * e.TeacherPass) / sftArm, e.ArmRatio(config, 1000, pass: true), 9);
        // stage 3 alone is SFT
        Assert.Equal(1, e.ArmRatio(new TrainingConfig { Steps = new() { [3] = 50 } }, 1000, pass: false), 9);
        Assert.Throws<ArgumentException>(() => CostEstimate.Of(Teacher, student, new TrainingConfig(), []));
    }
}
