using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tests.Training;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Recalibration;

public class GenRecalLossStepTests
{
    [Fact]
    public void A_Recalibrator_frozen_in_stage_2_skips_the_regularizer_and_gives_the_student_the_same_gradient()
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root, scale: 0.5));
        using var student = Pretrained.Load(TinyPair.Student(root));
        var data = LlavaDataset.LoadStrict(TinyPair.WriteData(root));
        var joint = new TrainingConfig { TrainRecalibratorInStage2 = true };
        var frozen = joint with { TrainRecalibratorInStage2 = false }; // the default
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, joint.MaxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, joint.MaxLength);
        using var tb = tc.Collate(data.Take(4).ToList());
        using var sb = sc.Collate(data.Take(4).ToList());
        ParameterGroups.Freeze(teacher.Model);
        manual_seed(3);
        var rec = new Recalibrator(joint.Recalibrator, student.Config.Text, teacher.Config.Text.HiddenSize);

        Dictionary<string, Tensor> StudentGradients(TrainingConfig config, Stage stage, out LossTerms terms)
        {
            // what trains in this stage, as the recipe sets it: with the frozen config, the Recalibrator gets no gradient in stage 2
            ParameterGroups.Configure(stage, student.Model, rec, teacher.Model, config);
            foreach (var p in student.Model.parameters().Concat(rec.parameters())) p.grad = null;
            terms = new GenRecalLossStep(teacher.Model, student.Model, rec, config).Compute(tb, sb, stage);
            terms.Loss.backward();
            return student.Model.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }

        var withReg = StudentGradients(joint, Stage.Distillation, out var jointTerms);
        var skipped = StudentGradients(frozen, Stage.Distillation, out var frozenTerms);
        Assert.NotNull(jointTerms.RegCe);
        Assert.NotNull(jointTerms.RegKl);
        Assert.All(rec.parameters(), p => Assert.Null(p.grad)); // the configuration really froze it
        Assert.Null(frozenTerms.RegCe);
        Assert.Null(frozenTerms.RegKl);
        // the loss loses exactly the regularizer's two terms, and no student gradient changes: Algorithm 2 reads no student feature
        Assert.Equal(jointTerms.Loss.item<float>() - jointTerms.RegCe!.item<float>() - jointTerms.RegKl!.item<float>(), frozenTerms.Loss.item<float>(), 4);
        Assert.NotEmpty(withReg);
        Assert.Equal(withReg.Keys.Order(), skipped.Keys.Order());
        foreach (var (name, g) in withReg)
            Assert.True(TestSupport.MaxAbsDiff(g, skipped[name]) < 1e-6, $"{name}: the student's gradient moved");
        // stage 1 trains the Recalibrator alone: the regularizer stays there whatever stage 2 does
        StudentGradients(frozen, Stage.Alignment, out var alignment);
        Assert.NotNull(alignment.RegCe);
    }
}
