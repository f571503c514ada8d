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

    /// <summary>
    /// Paired bootstrap of two evaluations of the same questions, matched by question id (<paramref name="where"/> selects
    /// questions, e.g. one family). Both must have scored the same set of questions, each once.
    /// </summary>
    public static PairedDifference PairedBootstrap(EvaluationResult a, EvaluationResult b, Func<EvaluatedItem, bool>? where = null)
    {
        var (x, y) = Paired(a, b, where);
        return PairedBootstrap(x, y);
    }

    /// <summary>The outcomes of the questions a and b both scored, in a's order; an error unless they scored the same set once each.</summary>
    public static (List<bool> A, List<bool> B) Paired(EvaluationResult a, EvaluationResult b, Func<EvaluatedItem, bool>? where = null)
    {
        var bById = new Dictionary<string, EvaluatedItem>();
        foreach (var i in b.Items)
            if (!bById.TryAdd(i.Id, i)) throw new ArgumentException($"question '{i.Id}' is scored twice for {b.Model}");
        if (a.Items.Select(i => i.Id).Distinct().Count() != a.Items.Count) throw new ArgumentException($"a question is scored twice for {a.Model}");
        if (a.Items.Count != b.Items.Count) throw new ArgumentException($"{a.Model} scored {a.Items.Count} questions and {b.Model} {b.Items.Count}: paired comparisons need the same questions");
        var pairs = a.Items.Where(i => (where ?? (_ => true))(i)).Select(i => bById.TryGetValue(i.Id, out var j) ? (i.Correct, j.Correct)
            : throw new ArgumentException($"question '{i.Id}' was scored for {a.Model} but not for {b.Model}")).ToList();
        return (pairs.Select(p => p.Item1).ToList(), pairs.Select(p => p.Item2).ToList());
    }

    /// <summary>
    /// Two-stage (hierarchical) paired bootstrap over several training seeds, each with its own test questions: every
    /// resample draws seeds with replacement, then questions with replacement within each drawn seed, and averages the
    /// per-question differences. Unlike pooling all questions in one bootstrap, the interval includes how much the
    /// difference varies from one training seed to another, not only test-set sampling (Davison &amp; Hinkley 1997, §3.8).
    /// </summary>
    public static PairedDifference NestedPairedBootstrap(IReadOnlyList<(IReadOnlyList<bool> A, IReadOnlyList<bool> B)> seeds, int resamples = 10_000, int seed = 12345)
    {
        if (seeds.Count == 0) return new PairedDifference(0, 0, 0, 0);
        var d = seeds.Select(s => s.A.Count == s.B.Count ? s.A.Select((x, i) => (x ? 1 : 0) - (s.B[i] ? 1 : 0)).ToArray()
            : throw new ArgumentException($"paired bootstrap needs the same questions: {s.A.Count} vs {s.B.Count} outcomes")).ToArray();
        var rng = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            long sum = 0, n = 0;
            for (int k = 0; k < d.Length; k++)
            {
                var g = d[rng.Next(d.Length)];
                for (int i = 0; i < g.Length; i++) sum += g[rng.Next(g.Length)];
                n += g.Length;
            }
            means[r] = n == 0 ? 0 : (double)sum / n;
        }
        Array.Sort(means);
        return new PairedDifference(d.SelectMany(g => g).Select(x => (double)x).DefaultIfEmpty(0).Average(), Percentile(means, 0.025), Percentile(means, 0.975), d.Sum(g => g.Length));
    }

    static double Percentile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
