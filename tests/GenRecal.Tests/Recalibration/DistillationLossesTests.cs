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
}
