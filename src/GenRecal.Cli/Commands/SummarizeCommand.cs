using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using GenRecal.Evaluation;

namespace GenRecal.Cli.Commands;

/// <summary>
/// genrecal summarize: demo results (results*.json) over seeds, as markdown: each model's mean accuracy and spread,
/// and the paired differences of the demo's comparisons pooled over every seed's test questions.
/// </summary>
public static class SummarizeCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "demo output directories (one per seed)", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("summarize", "Average demo results over seeds, with pooled paired differences (markdown)") { runs };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            Console.Write(Summarize(r.GetValue(runs)!));
            return ExitCodes.Success;
        }));
        return cmd;
    }

    public static string Summarize(IEnumerable<string> dirs)
    {
        // model (with its variant where it is a GenRecal variant) -> evaluation per seed
        var table = new SortedDictionary<string, SortedDictionary<int, EvaluationResult>>(StringComparer.Ordinal);
        var sources = new HashSet<(string, int, string)>();
        var readings = new Dictionary<string, (string Reading, string File)>();
        foreach (var dir in dirs)
        {
            var files = Directory.Exists(dir) ? Directory.GetFiles(dir, "results*.json") : [];
            if (files.Length == 0) throw new FileNotFoundException($"{dir}: no results*.json (run genrecal demo there first)");
            foreach (var file in files.Order(StringComparer.Ordinal))
            {
                var j = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
                var variant = j["variant"]?.GetValue<string>() ?? Demo.GenRecalVariants.Default;
                int seed = j["seed"]!.GetValue<int>();
                var stageTwo = j[DemoReport.StageTwoKey]?.GetValue<string>() ?? "joint"; // files before the frozen default
                foreach (var node in j["evaluations"]!.AsArray())
                {
                    var e = EvaluationResult.FromJson(node!.AsObject());
                    // rows other than the genrecal row are shared by every variant of a seed: counted once
                    var key = e.Model == "genrecal" && variant != Demo.GenRecalVariants.Default ? $"genrecal ({variant})" : e.Model;
                    // a GenRecal row pools only runs whose stage 2 was the same reading (the default changed at stop 10)
                    if (e.Model.StartsWith("genrecal", StringComparison.Ordinal) && variant == Demo.GenRecalVariants.Default)
                    {
                        if (readings.TryGetValue(key, out var seen) && seen.Reading != stageTwo)
                            throw new InvalidDataException($"{file}: '{key}' ran with a {stageTwo} Recalibrator in stage 2, {seen.File} with a {seen.Reading} one; summarize one kind at a time");
                        readings.TryAdd(key, (stageTwo, file));
                    }
                    if (!table.TryGetValue(key, out var perSeed)) table[key] = perSeed = new();
                    if (perSeed.ContainsKey(seed) && !sources.Contains((key, seed, dir)))
                        throw new InvalidDataException($"{file}: seed {seed} of '{key}' is also in another directory; give one directory per seed");
                    perSeed.TryAdd(seed, e);
                    sources.Add((key, seed, dir));
                }
            }
        }
        var inv = CultureInfo.InvariantCulture;
        var seeds = table.Values.SelectMany(v => v.Keys).Distinct().Order().ToList();
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"| model | mean accuracy | sd over seeds | per seed ({string.Join(", ", seeds)}) | questions |");
        sb.AppendLine("|---|---:|---:|---|---:|");
        foreach (var (key, perSeed) in table)
        {
            var values = perSeed.Values.Select(e => 100 * e.Accuracy).ToList();
            double mean = values.Average();
            double sd = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : 0;
            sb.AppendLine($"| {key} | {mean.ToString("F1", inv)} | {sd.ToString("F1", inv)} | {string.Join(", ", values.Select(v => v.ToString("F1", inv)))} | {perSeed.Values.Sum(e => e.Total)} |");
        }
        AppendLossTerms(sb, dirs, inv);
        var comparisons = DemoReport.Comparisons(table.Keys).ToList();
        var rows = new List<string>();
        foreach (var (a, b) in comparisons)
        {
            // seeds where both rows kept every question's outcome (results written before items existed are skipped)
            var shared = table[a].Keys.Intersect(table[b].Keys).Where(s => table[a][s].Items.Count > 0 && table[b][s].Items.Count > 0).ToList();
            if (shared.Count == 0) continue;
            var perSeed = shared.Select(s => Statistics.Paired(table[a][s], table[b][s])).ToList();
            var d = Statistics.NestedPairedBootstrap(perSeed.Select(p => ((IReadOnlyList<bool>)p.A, (IReadOnlyList<bool>)p.B)).ToList());
            var deltas = perSeed.Select(p => 100.0 * (p.A.Count(x => x) - p.B.Count(x => x)) / p.A.Count);
            rows.Add($"| {a} − {b} | {DemoReport.Delta(d)} | {string.Join(", ", deltas.Select(x => x.ToString("+0.0;−0.0;0.0", inv)))} | {(d.ExcludesZero ? "yes" : "no")} |");
        }
        if (rows.Count == 0) return sb.ToString();
        sb.AppendLine();
        sb.AppendLine("Paired differences over the seeds both rows share: Δ in points with a 95 % interval from a two-stage bootstrap " +
                      "(seeds, then each seed's test questions, resampled), so it counts the spread between training seeds as well as test sampling:");
        sb.AppendLine();
        sb.AppendLine("| comparison | Δ [95 % CI] | Δ per seed | distinguishable from 0 |");
        sb.AppendLine("|---|---:|---|---|");
        foreach (var row in rows) sb.AppendLine(row);
        return sb.ToString();
    }

    /// <summary>GenRecal's loss terms per stage, first 20 → last 200 steps, averaged over the seeds (from results.json's loss_terms).</summary>
    static void AppendLossTerms(System.Text.StringBuilder sb, IEnumerable<string> dirs, CultureInfo inv)
    {
        var table = new SortedDictionary<(string Arm, string Stage), Dictionary<string, List<(double, double)>>>();
        foreach (var file in dirs.Where(Directory.Exists).SelectMany(d => Directory.GetFiles(d, "results.json")))
        {
            if (JsonNode.Parse(File.ReadAllText(file))?["loss_terms"] is not JsonObject arms) continue;
            foreach (var (arm, stages) in arms)
                if (arm.StartsWith("genrecal") && stages is JsonObject so)
                    foreach (var (stage, logged) in so)
                    {
                        if (!table.TryGetValue((arm, stage), out var t)) table[(arm, stage)] = t = [];
                        foreach (var (term, v) in (JsonObject)logged!)
                        {
                            if (v?[0] is null || v[1] is null) continue; // not logged in that part of the stage (LossTerms)
                            if (!t.TryGetValue(term, out var list)) t[term] = list = [];
                            list.Add((v![0]!.GetValue<double>(), v[1]!.GetValue<double>()));
                        }
                    }
        }
        if (table.Count == 0) return;
        var terms = DemoReport.Terms.Where(t => table.Values.Any(v => v.ContainsKey(t))).ToList();
        sb.AppendLine();
        sb.AppendLine("GenRecal's loss terms, mean of the first 20 → the last 200 steps of each stage, averaged over the seeds:");
        sb.AppendLine();
        sb.AppendLine($"| arm | stage | {string.Join(" | ", terms)} |");
        sb.AppendLine($"|---|---|{string.Concat(terms.Select(_ => "---|"))}");
        foreach (var ((arm, stage), t) in table)
            sb.AppendLine($"| {arm} | {stage} | " + string.Join(" | ", terms.Select(term => t.TryGetValue(term, out var v)
                ? $"{v.Average(x => x.Item1).ToString("0.###", inv)} → {v.Average(x => x.Item2).ToString("0.###", inv)}" : "")) + " |");
    }

}
