using GenRecal.Recalibration;
using static TorchSharp.torch;

namespace GenRecal.Tests.Recalibration;

public class DistillationLossesTests
{
    [Fact]
    public void Kl_is_zero_when_the_recalibrated_logits_equal_the_teachers()
    {
        manual_seed(1);
        var t = randn(6, 11) * 3;
        Assert.Equal(0, DistillationLosses.ForwardKl(t, t.clone(), ones(6, ScalarType.Bool)).item<float>(), 6);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    public void Kl_equals_a_naive_per_token_computation(double temperature)
    {
        manual_seed(2);
        var t = randn(5, 7) * 2;
        var s = randn(5, 7) * 2;
        var mask = tensor(new[] { true, false, true, true, false });
        double expected = 0;
        int counted = 0;
        for (int i = 0; i < 5; i++)
        {
            if (!mask[i].item<bool>()) continue;
            var tv = Enumerable.Range(0, 7).Select(j => t[i, j].item<float>() / temperature).ToArray();
            var sv = Enumerable.Range(0, 7).Select(j => s[i, j].item<float>() / temperature).ToArray();
            double zt = tv.Sum(Math.Exp), zs = sv.Sum(Math.Exp);
            for (int j = 0; j < 7; j++)
            {
                double pt = Math.Exp(tv[j]) / zt, ps = Math.Exp(sv[j]) / zs;
                expected += pt * Math.Log(pt / ps);
            }
            counted++;
        }
        expected = expected / counted * temperature * temperature;
        Assert.Equal(expected, DistillationLosses.ForwardKl(t, s, mask, temperature).item<float>(), 5);
    }

    [Fact]
    public void Uld_sorts_pads_and_sums_absolute_differences_as_written_by_hand()
    {
        // teacher over 3 ids, student over 2: probabilities chosen through log so softmax returns them exactly
        var pt = new[] { 0.2, 0.5, 0.3 };
        var ps = new[] { 0.9, 0.1 };
        var t = tensor(pt.Select(x => Math.Log(x)).ToArray()).unsqueeze(0).to(ScalarType.Float32);      // [1, 3]
        var s = tensor(ps.Select(x => Math.Log(x)).ToArray()).unsqueeze(0).to(ScalarType.Float32);      // [1, 2]
        // sorted: teacher 0.5 0.3 0.2, student 0.9 0.1 0 → |0.5-0.9| + |0.3-0.1| + |0.2-0| = 0.8
        Assert.Equal(0.8, DistillationLosses.UldSortedL1(t, s, ones(1, ScalarType.Bool)).item<float>(), 5);
        // the other way round (student vocabulary larger) pads the teacher side: same distance
        Assert.Equal(0.8, DistillationLosses.UldSortedL1(s, t, ones(1, ScalarType.Bool)).item<float>(), 5);
    }

    [Fact]
    public void Uld_is_zero_for_permuted_distributions_and_averages_only_masked_rows()
    {
        manual_seed(5);
        var t = randn(3, 5);
        var permuted = t.index_select(1, tensor(new long[] { 4, 2, 0, 1, 3 }));
        Assert.Equal(0, DistillationLosses.UldSortedL1(t, permuted, ones(3, ScalarType.Bool)).item<float>(), 5);
        var s = randn(3, 7);
        var mask = tensor(new[] { true, false, true });
        double Row(int i)
        {
            var a = t[i].softmax(0).sort(0, descending: true).Values.data<float>().Select(x => (double)x).ToList();
            var b = s[i].softmax(0).sort(0, descending: true).Values.data<float>().Select(x => (double)x).ToList();
            while (a.Count < b.Count) a.Add(0);
            return a.Zip(b).Sum(p => Math.Abs(p.First - p.Second));
        }
        Assert.Equal((Row(0) + Row(2)) / 2, DistillationLosses.UldSortedL1(t, s, mask).item<float>(), 5);
    }

    [Fact]
    public void Cross_entropy_ignores_minus_100_and_matches_a_naive_version()
    {
        manual_seed(3);
        var logits = randn(4, 6);
        var targets = tensor(new long[] { 2, -100, 5, 0 });
        double expected = 0;
        foreach (var (row, target) in new[] { (0, 2), (2, 5), (3, 0) })
        {
            var v = Enumerable.Range(0, 6).Select(j => (double)logits[row, j].item<float>()).ToArray();
            expected += -(v[target] - Math.Log(v.Sum(Math.Exp)));
        }
        Assert.Equal(expected / 3, DistillationLosses.CrossEntropy(logits, targets).item<float>(), 5);
    }

    [Fact]
    public void Next_token_cross_entropy_shifts_labels_by_one()
    {
        manual_seed(4);
        var logits = randn(1, 4, 9);
        var labels = tensor(new long[] { -100, 3, 7, -100 }).unsqueeze(0);
        var expected = DistillationLosses.CrossEntropy(logits[0, ..2], tensor(new long[] { 3, 7 }));
        Assert.Equal(expected.item<float>(), DistillationLosses.NextTokenCrossEntropy(logits, labels).item<float>(), 6);
    }

    [Fact]
    public void Student_ce_on_answer_rows_only_equals_next_token_ce_on_the_full_logits()
    {
        var root = TestSupport.TempDir();
        var student = GenRecal.Models.Pretrained.Load(GenRecal.Tests.Training.TinyPair.Student(root));
        var examples = GenRecal.Data.LlavaDataset.LoadStrict(GenRecal.Tests.Training.TinyPair.WriteData(root));
        using var batch = new GenRecal.Data.Collator(student.Model, student.Tokenizer, 64).Collate(examples);
        var hidden = GenRecalLossStep.Hidden(student.Model, batch);
        var full = DistillationLosses.NextTokenCrossEntropy(student.Model.Head(hidden), batch.Labels);
        Assert.Equal(full.item<float>(), GenRecalLossStep.StudentCrossEntropy(student.Model, hidden, batch).item<float>(), 5);
    }
}
