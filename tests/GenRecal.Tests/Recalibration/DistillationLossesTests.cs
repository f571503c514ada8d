using GenRecal.Recalibration;
using static TorchSharp.torch;

namespace GenRecal.Tests.Recalibration;

public class DistillationLossesTests(Xunit.Abstractions.ITestOutputHelper output)
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

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    public void Kl_gradient_is_t_times_student_minus_teacher_probabilities_across_chunks(double temperature)
    {
        // 1M ids: four rows per chunk, so ten rows take three chunks
        long v = DistillationLosses.KlChunkElements / 4;
        manual_seed(9);
        var t = randn(10, v) * 3;
        var s = (randn(10, v) * 3).requires_grad_();
        var kl = DistillationLosses.ForwardKl(TeacherDistribution.FromLogits(t, temperature), s, temperature);
        kl.backward();
        // d/dz of T²·mean_rows KL(p_t ‖ softmax(z/T)) = T (softmax(z/T) − p_t) / N
        var expected = temperature * ((s.detach() / temperature).softmax(-1) - (t / temperature).softmax(-1)) / 10;
        Assert.True(TestSupport.MaxAbsDiff(expected, s.grad!) < 1e-9 + 1e-4 * expected.abs().max().item<float>());
        // the value against the naive form in float64 (float32 sums over a million ids carry a few 1e-5 of relative error)
        var (t64, s64) = (t.to(ScalarType.Float64) / temperature, s.detach().to(ScalarType.Float64) / temperature);
        double naive = (t64.softmax(-1) * (t64.log_softmax(-1) - s64.log_softmax(-1))).sum(-1).mean().item<double>() * temperature * temperature;
        Assert.True(Math.Abs(naive - kl.item<float>()) < 1e-4 * naive, $"naive {naive}, chunked {kl.item<float>()}");
    }

    [Fact]
    public void Top_k_kl_falls_short_of_the_exact_kl_by_the_tails_own_kl_weighted_by_its_mass()
    {
        // chain rule of KL over the partition {each top-k id, "the rest"}: exact = coarse + q_tail · KL(q | tail ‖ p | tail),
        // worked here in float64 from the full distributions
        manual_seed(10);
        int v = 40, k = 6;
        var t = randn(5, v) * 2;
        var s = randn(5, v) * 2;
        var coarse = DistillationLosses.ForwardKl(TeacherDistribution.FromLogits(t, 1.0, topK: k), s).item<float>();
        var exact = DistillationLosses.ForwardKl(TeacherDistribution.FromLogits(t, 1.0), s).item<float>();
        double gap = 0;
        for (int i = 0; i < 5; i++)
        {
            var q = t[i].to(ScalarType.Float64).softmax(0).data<double>().ToArray();
            var p = s[i].to(ScalarType.Float64).softmax(0).data<double>().ToArray();
            var tail = Enumerable.Range(0, v).OrderByDescending(j => q[j]).Skip(k).ToList();
            double qt = tail.Sum(j => q[j]), pt = tail.Sum(j => p[j]);
            gap += tail.Sum(j => q[j] * Math.Log(q[j] / qt / (p[j] / pt)));
        }
        gap /= 5;
        Assert.True(gap > 1e-3);
        Assert.Equal(exact - gap, coarse, 4);
    }

    [Fact]
    public void Top_64_of_8192_ids_keeps_a_peaked_teachers_kl_and_its_gradient()
    {
        // A teacher as a trained LM head is: most mass on a few ids, a long flat tail; the student a noisy copy of it.
        // The top-k form drops only the tail's internal shape (previous test), whose weight here is the tail mass (~2 %), so
        // the loss may fall short by up to a few per cent of itself; the gradient it gives must point the same way.
        manual_seed(11);
        long v = 8192;
        var ranks = arange(1, v + 1, ScalarType.Float32);
        var t = stack(Enumerable.Range(0, 16).Select(_ => (-2.2f * ranks.log()).index_select(0, randperm(v))).ToArray()); // Zipf-like, s = 2.2
        var s = t + randn(16, v);
        var sExact = s.clone().requires_grad_();
        var sTop = s.clone().requires_grad_();
        var exact = DistillationLosses.ForwardKl(TeacherDistribution.FromLogits(t, 1.0), sExact);
        var top = DistillationLosses.ForwardKl(TeacherDistribution.FromLogits(t, 1.0, topK: 64), sTop);
        exact.backward();
        top.backward();
        double e = exact.item<float>(), c = top.item<float>();
        var cosine = (sExact.grad!.flatten() * sTop.grad!.flatten()).sum() / (sExact.grad!.norm() * sTop.grad!.norm());
        output.WriteLine($"exact KL {e:F5}, top-64 KL {c:F5} ({100 * (e - c) / e:F2} % short), gradient cosine {cosine.item<float>():F4}");
        Assert.InRange(c, 0.95 * e, e + 1e-6);
        Assert.True(cosine.item<float>() > 0.99, $"gradient cosine {cosine.item<float>()}");
    }
}
