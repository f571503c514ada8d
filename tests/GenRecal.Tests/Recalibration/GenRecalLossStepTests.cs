using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tests.Training;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Recalibration;

public class GenRecalLossStepTests
{
    /// <summary>
    /// Compute runs Algorithm 1's and Algorithm 2's Recalibrator passes as one call over twice the rows, the student's and
    /// the teacher's questions padded to one width. The expectation here is the method as written: two separate
    /// Recalibrator calls, the teacher's head on each one's scored rows and the four losses, plus the student's CE in stage 2.
    /// </summary>
    [Theory]
    [InlineData(Stage.Alignment)]
    [InlineData(Stage.Distillation)]
    public void One_call_for_both_Recalibrator_passes_gives_the_terms_and_gradients_of_two_separate_calls(Stage stage)
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root, scale: 0.5));
        using var student = Pretrained.Load(TinyPair.Student(root));
        var data = LlavaDataset.LoadStrict(TinyPair.WriteData(root));
        var config = new TrainingConfig { BatchSize = 4, Steps = new() { [1] = 1, [2] = 1 }, KlTemperature = 2.0 };
        ParameterGroups.Freeze(teacher.Model);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, config.MaxLength);
        manual_seed(5);
        var rec = new Recalibrator(config.Recalibrator, student.Config.Text, teacher.Config.Text.HiddenSize);
        // rows of different question and answer lengths, so the shorter side's padding is exercised
        var batch = new[] { data[2], data[0], data[6] };
        using var tb = tc.Collate(batch);
        using var sb = sc.Collate(batch);
        var trained = rec.parameters().Concat(student.Model.parameters()).ToArray();

        var terms = new GenRecalLossStep(teacher.Model, student.Model, rec, config).Compute(tb, sb, stage);
        terms.Loss.backward();
        var grads = trained.Select(p => p.grad?.clone()).ToArray();
        foreach (var p in trained) p.grad?.zero_();

        // the same losses from two separate Recalibrator calls
        var t = GenRecalLossStep.SplitOf(tb);
        var s = GenRecalLossStep.SplitOf(sb);
        var tf = TeacherFeatures.Compute(teacher.Model, tb, config.Recalibrator.AnswerSource, config.KlTemperature);
        var (rows, targets) = GenRecalLossStep.ScoredRows(tb, t);
        var zs = GenRecalLossStep.Hidden(student.Model, sb);
        var zqs = GenRecalLossStep.Segments(zs, [.. s.QuestionLengths.Select(_ => 0)], s.QuestionLengths);
        var answer = rec.Project(tf.AnswerInput);
        var r1 = rec.Forward(zqs, s.QuestionLengths, s.QuestionPositions, answer, t.AnswerLengths, t.AnswerPositions);
        var r2 = rec.Forward(rec.Project(tf.Question), t.QuestionLengths, t.QuestionPositions, answer, t.AnswerLengths, t.AnswerPositions);
        Tensor Logits(Tensor r) => teacher.Model.Head(r.reshape(-1, r.shape[2]).index_select(0, rows));
        var expected = new Dictionary<string, Tensor>
        {
            ["ce_recal"] = DistillationLosses.CrossEntropy(Logits(r1), targets),
            ["kl"] = DistillationLosses.ForwardKl(tf.Targets, Logits(r1), config.KlTemperature),
            ["reg_ce"] = DistillationLosses.CrossEntropy(Logits(r2), targets),
            ["reg_kl"] = DistillationLosses.ForwardKl(tf.Targets, Logits(r2), config.KlTemperature),
        };
        if (stage == Stage.Distillation) expected["ce_student"] = GenRecalLossStep.StudentCrossEntropy(student.Model, zs, sb);
        var actual = terms.Named().Where(p => p.Name != "loss").ToDictionary(p => p.Name, p => p.Value.item<float>());
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, value) in expected)
            Assert.True(Math.Abs(value.item<float>() - actual[name]) < 1e-5, $"{stage} {name}: two calls {value.item<float>()}, one call {actual[name]}");
        Assert.True(expected["kl"].item<float>() > 1e-3 && expected["reg_kl"].item<float>() > 1e-3); // not trivially zero

        expected.Values.Aggregate((a, b) => a + b).backward(); // the default loss weights are all 1
        for (int i = 0; i < trained.Length; i++)
        {
            Tensor? one = grads[i], two = trained[i].grad;
            if (one is null || two is null)
            {
                // a parameter no loss reaches has no gradient, or a zero one, either way
                Assert.True((one ?? two) is not { } g || g.abs().max().item<float>() == 0, $"{stage} gradient {i}: present on one side only");
                continue;
            }
            double diff = (one - two).abs().max().item<float>(), scale = two.abs().max().item<float>();
            Assert.True(diff <= 1e-5 * Math.Max(1, scale), $"{stage} gradient {i}: max |difference| {diff:g3} (scale {scale:g3})");
        }
        Assert.Contains(grads, g => g is not null && g.abs().max().item<float>() > 0);
    }
}
