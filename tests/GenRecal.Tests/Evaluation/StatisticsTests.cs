using GenRecal.Evaluation;

namespace GenRecal.Tests.Evaluation;

public class StatisticsTests
{
    [Fact]
    public void Wilson_interval_matches_the_published_value_of_a_textbook_case()
    {
        // 81 successes in 263 trials: Wilson score interval 0.25529 – 0.36621, evaluated outside this code
        // (Wilson 1927's closed form in Python, z = 1.959964)
        var (lo, hi) = Statistics.WilsonInterval(81, 263);
        Assert.Equal(0.2553, lo, 4);
        Assert.Equal(0.3662, hi, 4);
        Assert.Equal((0.0, 1.0), Statistics.WilsonInterval(0, 0));
        Assert.Equal(0.0, Statistics.WilsonInterval(0, 10).Low);
    }

    [Fact]
    public void Paired_bootstrap_is_exact_where_every_question_agrees()
    {
        var all = Enumerable.Repeat(true, 50).ToList();
        var none = Enumerable.Repeat(false, 50).ToList();
        var d = Statistics.PairedBootstrap(all, none);
        Assert.Equal((1.0, 1.0, 1.0), (d.Difference, d.Low, d.High));
        var same = Statistics.PairedBootstrap(all, all);
        Assert.Equal((0.0, 0.0, 0.0), (same.Difference, same.Low, same.High));
        Assert.False(same.ExcludesZero);
    }

    [Fact]
    public void Paired_bootstrap_interval_has_the_binomial_width_of_the_discordant_questions()
    {
        // 2 000 questions; a right and b wrong on 200, the reverse on 100, the rest equal. The per-question difference
        // d takes +1 (p=0.10), -1 (q=0.05), 0: mean 0.05, variance p+q-(p-q)^2 = 0.1475, so the 95 % interval is
        // 0.05 ± 1.96·sqrt(0.1475/2000) = 0.05 ± 0.0168.
        int n = 2000;
        var a = new bool[n];
        var b = new bool[n];
        for (int i = 0; i < 200; i++) a[i] = true;
        for (int i = 200; i < 300; i++) b[i] = true;
        for (int i = 300; i < 1100; i++) a[i] = b[i] = true; // both right: must not widen the paired interval
        var d = Statistics.PairedBootstrap(a, b);
        double half = 1.96 * Math.Sqrt(0.1475 / n);
        Assert.Equal(0.05, d.Difference, 9);
        Assert.InRange(d.Low, 0.05 - half - 0.003, 0.05 - half + 0.003);
        Assert.InRange(d.High, 0.05 + half - 0.003, 0.05 + half + 0.003);
        Assert.True(d.ExcludesZero);
    }

    [Fact]
    public void Paired_bootstrap_over_evaluations_pairs_by_question_id()
    {
        EvaluationResult Eval(string name, params (string Id, bool Ok)[] items) =>
            new(name, items.Count(i => i.Ok), items.Length, []) { Items = items.Select(i => new EvaluatedItem(i.Id, "f", "", i.Ok)).ToList() };
        var a = Eval("a", ("q1", true), ("q2", false), ("q3", true));
        var b = Eval("b", ("q3", true), ("q1", false), ("q2", false)); // another order: pairing is by id, not position
        var d = Statistics.PairedBootstrap(a, b);
        Assert.Equal(1.0 / 3, d.Difference, 9);
        Assert.Throws<ArgumentException>(() => Statistics.PairedBootstrap(a, Eval("c", ("q1", true))));
    }

    [Fact]
    public void Nested_bootstrap_counts_the_spread_between_seeds_that_pooling_questions_hides()
    {
        // seed 1: a right and b wrong everywhere (Δ = +1); seed 2: the reverse (Δ = −1). Within a seed every resample of
        // questions gives the same Δ, so the only uncertainty is which seeds are drawn: means −1, 0 or +1.
        var right = Enumerable.Repeat(true, 200).ToList();
        var wrong = Enumerable.Repeat(false, 200).ToList();
        var nested = Statistics.NestedPairedBootstrap([(right, wrong), (wrong, right)]);
        Assert.Equal(0, nested.Difference, 9);
        Assert.Equal((-1.0, 1.0), (nested.Low, nested.High));
        // pooled as one bootstrap over 400 questions the same data look precise: ±1.96·sqrt(1/400) ≈ ±0.1
        var pooled = Statistics.PairedBootstrap([.. right, .. wrong], [.. wrong, .. right]);
        Assert.InRange(pooled.High - pooled.Low, 0.15, 0.25);
        // one seed: the nested bootstrap is the ordinary paired bootstrap's distribution
        var one = Statistics.NestedPairedBootstrap([(right, wrong)]);
        Assert.Equal((1.0, 1.0, 1.0), (one.Difference, one.Low, one.High));
    }
}
