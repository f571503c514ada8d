using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using GenRecal.Demo;
using GenRecal.Evaluation;
using GenRecal.Tensors;
using GenRecal.Training;

namespace GenRecal.Cli;

/// <summary>Writes OUT/report.md (the table with intervals, paired differences, settings, timings), OUT/results.json and ScottPlot PNGs.</summary>
public static class DemoReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The row each row is compared with: students with the teacher's tokenizer against their own SFT; the rest against sft.</summary>
    public static string? ReferenceOf(string model) => model switch
    {
        "sft" or "sft-same-tokenizer" => null,
        "kd-same-tokenizer" => "sft-same-tokenizer",
        _ => "sft",
    };

    /// <summary>Paired differences (a − b) the demo reports: each row against its reference, and the issue's other comparisons.</summary>
    public static List<(string A, string B)> Comparisons(IEnumerable<string> models)
    {
        var names = models.ToHashSet();
        var list = names.Where(m => ReferenceOf(m) is { } r && names.Contains(r)).Select(m => (m, ReferenceOf(m)!)).ToList();
        foreach (var g in names.Where(n => n.StartsWith("genrecal")))
            foreach (var other in new[] { "uld", "seqkd" })
                if (names.Contains(other)) list.Add((g, other));
        // the default against each other GenRecal form (the paper's, a variant, an ablation)
        if (names.Contains("genrecal"))
            foreach (var g in names.Where(n => n.StartsWith("genrecal-") || n.StartsWith("genrecal (")).Order(StringComparer.Ordinal)) list.Add(("genrecal", g));
        return list;
    }

    public static string Write(DemoResult r)
    {
        var sb = new StringBuilder();
        var p = r.Preset;
        var byName = r.Evaluations.ToDictionary(e => e.Model);
        var diffs = Comparisons(byName.Keys).Select(c => (c.A, c.B, D: Statistics.PairedBootstrap(byName[c.A], byName[c.B]))).ToList();
        var families = r.Evaluations.SelectMany(e => e.Families.Keys).Distinct().Order().ToList();

        sb.AppendLine($"# GenRecal demo — preset `{p.Name}`, seed {r.Seed}{(r.Variant == GenRecalVariants.Default ? "" : $", GenRecal variant `{r.Variant}`")}\n");
        sb.AppendLine($"Test split: {r.Evaluations[0].Total} questions. Accuracy with its 95 % Wilson interval; Δ is the paired difference to the row's " +
                      "reference (same questions), with a 95 % paired-bootstrap interval (10 000 resamples). Per family: accuracy in %.\n");
        sb.AppendLine($"| model | accuracy [95 % CI] | Δ vs | Δ [95 % CI] | {string.Join(" | ", families)} |");
        sb.AppendLine($"|---|---:|---|---:|{string.Concat(families.Select(_ => "---:|"))}");
        foreach (var e in r.Evaluations)
        {
            var reference = ReferenceOf(e.Model) is { } rf && byName.ContainsKey(rf) ? rf : null;
            var d = reference is null ? null : diffs.First(x => x.A == e.Model && x.B == reference).D;
            sb.AppendLine($"| {e.Model} | {Pct(e.Accuracy)} [{Pct(e.Interval.Low)}, {Pct(e.Interval.High)}] | {reference ?? ""} | {(d is null ? "" : Delta(d))} | " +
                string.Join(" | ", families.Select(f => e.Families.TryGetValue(f, out var v) ? Pct((double)v.Correct / v.Total) : "-")) + " |");
        }
        sb.AppendLine();
        sb.AppendLine("## Paired differences, in words\n");
        foreach (var (a, b, d) in diffs)
            sb.AppendLine($"- `{a}` − `{b}`: {Delta(d)} points — " + (d.ExcludesZero
                ? $"distinguishable from zero ({(d.Difference > 0 ? a : b)} is better)."
                : "not distinguishable from zero at this test size."));
        sb.AppendLine();
        sb.AppendLine("## Per family (Δ in points, paired 95 % interval)\n");
        sb.AppendLine($"| comparison | {string.Join(" | ", families)} |");
        sb.AppendLine($"|---|{string.Concat(families.Select(_ => "---:|"))}");
        foreach (var (a, b, _) in diffs.Where(x => ReferenceOf(x.A) == x.B || x.B == "uld" || x.B == "seqkd"))
            sb.AppendLine($"| {a} − {b} | " + string.Join(" | ", families.Select(f => Delta(Statistics.PairedBootstrap(byName[a], byName[b], i => i.Family == f)))) + " |");
        sb.AppendLine();
        AppendTargets(sb, byName, diffs);

        sb.AppendLine("## Settings");
        sb.AppendLine($"- regime: a transfer set. The teacher learns from its own set T ({p.Train} examples, {p.TeacherSteps} steps). The distillation set S " +
            $"({p.Transfer} examples, drawn apart from T) has gold answers on {p.Labelled} ({p.LabelledFraction.ToString("P0", Inv)}); the teacher answered the other " +
            $"{r.TeacherAnswered} ({r.TeacherSilent} left out: the teacher's answer was empty). `sft*` rows learn from the labelled part; the other students from all of S.");
        sb.AppendLine($"- families: {string.Join(", ", p.Families)}{(p.ExplainedAnswers ? "; explained answers" : "")}");
        sb.AppendLine($"- teacher: {p.TeacherTokenizer} tokenizer, hidden {p.TeacherText.HiddenSize}, {p.TeacherText.NumHiddenLayers} layers, {p.TeacherVision.ImageSize}px images → {p.TeacherVision.NumImageTokens} image tokens");
        sb.AppendLine($"- student: {p.StudentTokenizer} (compact), hidden {p.StudentText.HiddenSize}, {p.StudentText.NumHiddenLayers} layers, {p.StudentVision.ImageSize}px images → {p.StudentVision.NumImageTokens} image tokens; " +
                      "`*-same-tokenizer` students are identical but use the teacher's tokenizer");
        sb.AppendLine($"- held equal between every student: the initial student, batch size {p.BatchSize}, {p.StudentSteps} student optimizer steps and their LR step for step " +
            $"(two cycles, {p.Stage2Steps} + {p.Stage3Steps}, LR {p.LrStart.ToString(Inv)} → {p.LrEnd.ToString(Inv)} linear within each, restarting where GenRecal's stage 3 does). " +
            $"GenRecal also trains its Recalibrator alone for {p.Stage1Steps} stage-1 steps (student frozen).");
        sb.AppendLine($"- pair: identical token boundaries {r.Pair.IdenticalBoundaryShare.ToString("P1", Inv)}, tokens/char teacher {r.Pair.Teacher.TokensPerChar.ToString("F3", Inv)} vs student {r.Pair.Student.TokensPerChar.ToString("F3", Inv)}");
        foreach (var a in r.Arms) sb.AppendLine($"- `{a.Name}`: {a.Description}");
        sb.AppendLine();
        sb.AppendLine("## Timings (seconds on this machine, as measured when each model was trained; data, teacher answers and evaluation: this run)");
        foreach (var (k, v) in r.Seconds) sb.AppendLine($"- {k}: {v.ToString(Inv)}");
        sb.AppendLine();
        string suffix = r.Variant == GenRecalVariants.Default ? "" : "-" + r.Variant;
        PlotLosses(r, Path.Combine(r.OutDir, $"losses{suffix}.png"));
        PlotAccuracy(r, Path.Combine(r.OutDir, $"accuracy{suffix}.png"));
        PlotFamilies(r, families, Path.Combine(r.OutDir, $"families{suffix}.png"));
        sb.AppendLine($"![training loss per arm](losses{suffix}.png)\n\n![accuracy with 95 % intervals](accuracy{suffix}.png)\n\n![accuracy per family](families{suffix}.png)");
        var json = new JsonObject
        {
            ["preset"] = p.Name, ["seed"] = r.Seed, ["variant"] = r.Variant,
            // what the GenRecal rows' stage 2 did: the default changed at stop 10, so a row name alone does not say it
            [StageTwoKey] = StageTwo(GenRecalVariants.Get(r.Variant)(p.Training(r.Seed, []))),
            ["evaluations"] = new JsonArray(r.Evaluations.Select(e => (JsonNode)e.ToJson()).ToArray()),
            ["differences"] = new JsonArray(diffs.Select(x => (JsonNode)new JsonObject
            {
                ["a"] = x.A, ["b"] = x.B, ["difference"] = Math.Round(x.D.Difference, 4), ["ci95"] = new JsonArray(Math.Round(x.D.Low, 4), Math.Round(x.D.High, 4)),
            }).ToArray()),
            ["seconds"] = new JsonObject(r.Seconds.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["loss_terms"] = LossTerms(r),
            ["pair"] = r.Pair.ToJson(),
        };
        AtomicFile.WriteAllText(Path.Combine(r.OutDir, $"results{suffix}.json"), json.ToJsonString(new() { WriteIndented = true }));
        var path = Path.Combine(r.OutDir, $"report{suffix}.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

    /// <summary>The benchmark's targets, checked on this run (one seed: the headline needs three).</summary>
    static void AppendTargets(StringBuilder sb, Dictionary<string, EvaluationResult> byName, List<(string A, string B, Statistics.PairedDifference D)> diffs)
    {
        Statistics.PairedDifference? D(string a, string b) => diffs.FirstOrDefault(x => x.A == a && x.B == b).D;
        sb.AppendLine("## Targets on this run\n");
        if (D("kd-same-tokenizer", "sft-same-tokenizer") is { } kd)
            sb.AppendLine($"- distillation transfers (kd-same-tokenizer ≥ sft-same-tokenizer + 3, interval above 0): {Delta(kd)} → {(kd.Difference >= 0.03 && kd.Low > 0 ? "met" : "not met")}");
        if (D("genrecal", "sft") is { } g)
        {
            sb.AppendLine($"- genrecal ≥ sft + 3, interval above 0: {Delta(g)} → {(g.Difference >= 0.03 && g.Low > 0 ? "met" : "not met")}");
            foreach (var other in new[] { "uld", "seqkd" })
                if (D("genrecal", other) is { } o) sb.AppendLine($"- genrecal ≥ {other}: {Delta(o)} → {(o.Difference >= 0 ? "met" : "not met")}{(o.ExcludesZero ? "" : " on the point estimate, inside the noise")}");
            if (D("kd-same-tokenizer", "sft-same-tokenizer") is { } k && k.Difference > 0)
                sb.AppendLine($"- share of the same-tokenizer KD gain GenRecal recovers across tokenizers (target ≥ 70 %): {(g.Difference / k.Difference).ToString("P0", Inv)}");
        }
        sb.AppendLine();
    }

    /// <summary>results.json's record of the GenRecal arms' stage 2: "frozen" or "joint" Recalibrator. Files without it were
    /// written before the default became frozen, so their GenRecal rows were "joint".</summary>
    public const string StageTwoKey = "genrecal_stage2_recalibrator";

    public static string StageTwo(Training.TrainingConfig config) => config.TrainRecalibratorInStage2 ? "joint" : "frozen";

    /// <summary>The loss terms loggers write, in the order they are shown.</summary>
    public static readonly string[] Terms = ["ce_recal", "kl", "reg_ce", "reg_kl", "ce_student", "uld", "loss"];

    /// <summary>Per arm and stage (cycle, for single-stage arms), each loss term's mean over the first 20 and the last 200
    /// steps: how far each term moved, and which terms are near zero (a Recalibrator that copies, a KD term with nothing to give).</summary>
    static JsonObject LossTerms(DemoResult r)
    {
        var result = new JsonObject();
        foreach (var arm in r.Arms)
        {
            var perStage = new JsonObject();
            var files = arm.MetricsFiles.Where(File.Exists).ToList();
            for (int f = 0; f < files.Count; f++)
                foreach (var stage in MetricsLog.Read(files[f]).GroupBy(o => o["stage_name"]!.GetValue<string>()))
                {
                    var rows = stage.ToList();
                    var terms = new JsonObject();
                    foreach (var term in Terms.Where(t => rows[0][t] is not null))
                    {
                        // a run resumed by another version may log a term in only some of a stage's rows (null: in none of them)
                        double? Mean(IEnumerable<JsonObject> xs) =>
                            xs.Where(o => o[term] is not null).Select(o => o[term]!.GetValue<double>()).ToList() is { Count: > 0 } v ? Math.Round(v.Average(), 4) : null;
                        terms[term] = new JsonArray(Mean(rows.Take(20)), Mean(rows.TakeLast(200)));
                    }
                    perStage[files.Count > 1 ? $"{stage.Key} (cycle {f + 1})" : stage.Key] = terms;
                }
            result[arm.Name] = perStage;
        }
        return result;
    }

    static string Pct(double v) => (100 * v).ToString("F1", Inv);
    public static string Delta(Statistics.PairedDifference d) => $"{(100 * d.Difference).ToString("+0.0;−0.0;0.0", Inv)} [{(100 * d.Low).ToString("+0.0;−0.0;0.0", Inv)}, {(100 * d.High).ToString("+0.0;−0.0;0.0", Inv)}]";

    /// <summary>SkiaSharp's dependency-free build has no font discovery, so ScottPlot is given a TrueType file
    /// (DejaVu Sans, Debian's fonts-dejavu-core, which scripts/prereqs.sh installs).</summary>
    static readonly Lazy<bool> FontsRegistered = new(() =>
    {
        string[] candidates = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"];
        var file = candidates.FirstOrDefault(File.Exists);
        if (file is null) return false;
        ScottPlot.Fonts.AddFontFile("DejaVu Sans", file, bold: false, italic: false);
        ScottPlot.Fonts.Default = "DejaVu Sans";
        return true;
    });

    static ScottPlot.Plot NewPlot(string title)
    {
        if (!FontsRegistered.Value) Console.Error.WriteLine("warning: no DejaVu Sans font found; plots will have no text (apt-get install fonts-dejavu-core)");
        var plot = new ScottPlot.Plot();
        // every label style, not only the tick labels, told the font by name: without fontconfig there is no fallback
        if (FontsRegistered.Value) plot.Font.Set("DejaVu Sans");
        plot.Title(title);
        return plot;
    }

    /// <summary>Each arm's summed training loss per student step (GenRecal's stage 1 left out: the student does not move),
    /// smoothed over 25 steps, on a log axis.</summary>
    static void PlotLosses(DemoResult r, string path)
    {
        var plot = NewPlot("Training loss per student step (25-step mean)");
        foreach (var arm in r.Arms)
        {
            var rows = arm.MetricsFiles.Where(File.Exists).SelectMany(MetricsLog.Read)
                .Where(o => o["stage_name"]?.GetValue<string>() != nameof(Stage.Alignment)).Select(o => o["loss"]!.GetValue<double>()).ToArray();
            if (rows.Length == 0) continue;
            var smooth = rows.Select((_, i) => rows[Math.Max(0, i - 24)..(i + 1)].Average()).Select(v => Math.Log10(Math.Max(v, 1e-6))).ToArray();
            var s = plot.Add.Scatter(Enumerable.Range(1, smooth.Length).Select(i => (double)i).ToArray(), smooth);
            s.LegendText = arm.Name;
            s.MarkerSize = 0;
        }
        plot.XLabel("student optimizer step (both LR cycles)");
        plot.YLabel("log10 of the summed loss");
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(path, 900, 500);
    }

    static void PlotAccuracy(DemoResult r, string path)
    {
        var plot = NewPlot($"Test accuracy, {r.Evaluations[0].Total} questions (bars: 95 % Wilson interval)");
        var palette = new ScottPlot.Palettes.Category10();
        var bars = r.Evaluations.Select((e, i) => new ScottPlot.Bar { Position = i, Value = 100 * e.Accuracy, FillColor = palette.GetColor(i) }).ToArray();
        plot.Add.Bars(bars);
        // the Wilson interval is asymmetric: its two sides drawn separately
        var xs = r.Evaluations.Select((_, i) => (double)i).ToArray();
        var errors = plot.Add.ErrorBar(xs, r.Evaluations.Select(e => 100 * e.Accuracy).ToArray(), r.Evaluations.Select(_ => 0.0).ToArray());
        errors.YErrorPositive = r.Evaluations.Select(e => 100 * (e.Interval.High - e.Accuracy)).ToArray();
        errors.YErrorNegative = r.Evaluations.Select(e => 100 * (e.Accuracy - e.Interval.Low)).ToArray();
        errors.Color = ScottPlot.Colors.Black;
        // long row names on two lines, so every tick label fits under its bar
        plot.Axes.Bottom.SetTicks(r.Evaluations.Select((_, i) => (double)i).ToArray(),
            r.Evaluations.Select(e => e.Model.Length > 9 ? e.Model.Replace("-", "-\n") : e.Model).ToArray());
        plot.YLabel("accuracy (%)");
        plot.XLabel("model");
        plot.Axes.Margins(bottom: 0);
        plot.SavePng(path, 900, 500);
    }

    static void PlotFamilies(DemoResult r, List<string> families, string path)
    {
        var plot = NewPlot("Test accuracy per question family");
        var palette = new ScottPlot.Palettes.Category10();
        int n = r.Evaluations.Count;
        for (int mi = 0; mi < n; mi++)
        {
            var e = r.Evaluations[mi];
            var bars = families.Select((f, fi) => new ScottPlot.Bar
            {
                Position = fi * (n + 1) + mi,
                Value = e.Families.TryGetValue(f, out var v) ? 100.0 * v.Correct / v.Total : 0,
                FillColor = palette.GetColor(mi),
            }).ToArray();
            plot.Add.Bars(bars).LegendText = e.Model;
        }
        plot.Axes.Bottom.SetTicks(families.Select((_, fi) => fi * (n + 1) + (n - 1) / 2.0).ToArray(), families.ToArray());
        plot.YLabel("accuracy (%)");
        plot.XLabel("question family");
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(path, 1000, 500);
    }
}
