namespace GenRecal.Evaluation;

/// <summary>The uncertainty of accuracies measured on a finite test split.</summary>
public static class Statistics
{
    /// <summary>95 % Wilson score interval of a binomial proportion (better than the normal one near 0 and 1).</summary>
    public static (double Low, double High) WilsonInterval(int correct, int total, double z = 1.959964)
    {
        if (total == 0) return (0, 1);
        double n = total, p = correct / n, z2 = z * z;
        double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        double half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    /// <summary>A difference of accuracies a − b on the same questions, with its paired-bootstrap 95 % interval.</summary>
    public sealed record PairedDifference(double Difference, double Low, double High, int Questions)
    {
        /// <summary>Whether the interval excludes zero: the difference is distinguishable from no difference.</summary>
        public bool ExcludesZero => Low > 0 || High < 0;
    }

    /// <summary>
    /// Paired bootstrap (Efron &amp; Tibshirani, ch. 16): resample the questions with replacement, keeping each
    /// question's pair of outcomes together, and take the 2.5 and 97.5 percentiles of the mean difference.
    /// Pairing removes the between-question variance both models share, which unpaired intervals would count twice.
    /// </summary>
    public static PairedDifference PairedBootstrap(IReadOnlyList<bool> a, IReadOnlyList<bool> b, int resamples = 10_000, int seed = 12345)
    {
        if (a.Count != b.Count) throw new ArgumentException($"paired bootstrap needs the same questions: {a.Count} vs {b.Count} outcomes");
        int n = a.Count;
        if (n == 0) return new PairedDifference(0, 0, 0, 0);
        var d = new int[n];
        for (int i = 0; i < n; i++) d[i] = (a[i] ? 1 : 0) - (b[i] ? 1 : 0);
        var rng = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            long sum = 0;
            for (int i = 0; i < n; i++) sum += d[rng.Next(n)];
            means[r] = (double)sum / n;
        }
        Array.Sort(means);
        return new PairedDifference(d.Average(), Percentile(means, 0.025), Percentile(means, 0.975), n);
    }

    /// <summary>Paired bootstrap over the questions two evaluations share, matched by question id.</summary>
    public static PairedDifference PairedBootstrap(EvaluationResult a, EvaluationResult b, Func<EvaluatedItem, bool>? where = null)
    {
        var bById = b.Items.ToDictionary(i => i.Id);
        var pairs = a.Items.Where(i => (where ?? (_ => true))(i)).Select(i => bById.TryGetValue(i.Id, out var j) ? (i.Correct, j.Correct)
            : throw new ArgumentException($"question '{i.Id}' was scored for {a.Model} but not for {b.Model}")).ToList();
        return PairedBootstrap(pairs.Select(p => p.Item1).ToList(), pairs.Select(p => p.Item2).ToList());
    }

    static double Percentile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
