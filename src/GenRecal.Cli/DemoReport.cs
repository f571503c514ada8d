using System.Globalization;
using System.Text;
using GenRecal.Demo;
using GenRecal.Evaluation;
using GenRecal.Tensors;
using GenRecal.Training;

namespace GenRecal.Cli;

/// <summary>Writes OUT/report.md with the comparison table, settings, timings and ScottPlot PNGs.</summary>
public static class DemoReport
{
    public static string Write(DemoResult r)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        var p = r.Preset;
        sb.AppendLine($"# GenRecal demo — preset `{p.Name}`, seed {r.Seed}, variant `{r.Variant}`\n");
        sb.AppendLine($"GenRecal variant: {GenRecalVariants.All[r.Variant].Description}.\n");
        var families = r.Evaluations.SelectMany(e => e.Families.Keys).Distinct().Order().ToList();
        sb.AppendLine($"| model | accuracy | {string.Join(" | ", families)} |");
        sb.AppendLine($"|---|---:|{string.Concat(families.Select(_ => "---:|"))}");
        foreach (var e in r.Evaluations)
            sb.AppendLine($"| {e.Model} | {e.Accuracy.ToString("P1", inv)} ({e.Correct}/{e.Total}) | " +
                string.Join(" | ", families.Select(f => e.Families.TryGetValue(f, out var v) ? ((double)v.Correct / v.Total).ToString("P0", inv) : "-")) + " |");
        sb.AppendLine();
        sb.AppendLine("## Settings");
        sb.AppendLine($"- data: {p.Train} train / {p.Val} val / {p.Test} test synthetic VQA examples, six families{(p.ExplainedAnswers ? ", explained answers" : "")}");
        sb.AppendLine($"- teacher: {p.TeacherTokenizer} (compact), hidden {p.TeacherText.HiddenSize}, {p.TeacherText.NumHiddenLayers} layers, {p.TeacherVision.ImageSize}px images → {p.TeacherVision.NumImageTokens} image tokens; SFT {p.TeacherSteps} steps");
        sb.AppendLine($"- student: {p.StudentTokenizer} (compact), hidden {p.StudentText.HiddenSize}, {p.StudentText.NumHiddenLayers} layers, {p.StudentVision.ImageSize}px images → {p.StudentVision.NumImageTokens} image tokens");
        sb.AppendLine($"- held equal between SFT and GenRecal: the initial student, the training data (each stage shuffles it with the run seed), batch size {p.BatchSize}, " +
            $"{p.StudentSteps} student optimizer steps and their LR, step for step (GenRecal: stage 2 {p.Stage2Steps} + stage 3 {p.Stage3Steps}; SFT: {p.Stage2Steps} + {p.Stage3Steps}, " +
            $"LR restarting at the same step), AdamW with LR {p.LrStart.ToString(inv)} → {p.LrEnd.ToString(inv)} linear within each");
        sb.AppendLine($"- GenRecal additionally trains the Recalibrator alone for {p.Stage1Steps} stage-1 steps (student frozen) and runs the teacher forward in stages 1-2");
        sb.AppendLine($"- pair: identical token boundaries {r.Pair.IdenticalBoundaryShare.ToString("P1", inv)}, tokens/char teacher {r.Pair.Teacher.TokensPerChar.ToString("F3", inv)} vs student {r.Pair.Student.TokensPerChar.ToString("F3", inv)}");
        sb.AppendLine();
        sb.AppendLine("## Timings (seconds)");
        foreach (var (k, v) in r.Seconds) sb.AppendLine($"- {k}: {v.ToString(inv)}");
        sb.AppendLine();
        string suffix = r.Variant == GenRecalVariants.Default ? "" : "-" + r.Variant;
        var lossPng = Path.Combine(r.OutDir, $"losses{suffix}.png");
        var accPng = Path.Combine(r.OutDir, $"accuracy{suffix}.png");
        PlotLosses(r, lossPng);
        PlotAccuracy(r, families, accPng);
        sb.AppendLine($"![loss terms per stage](losses{suffix}.png)\n\n![accuracy per family](accuracy{suffix}.png)");
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["preset"] = p.Name, ["seed"] = r.Seed, ["variant"] = r.Variant,
            ["evaluations"] = new System.Text.Json.Nodes.JsonArray(r.Evaluations.Select(e => (System.Text.Json.Nodes.JsonNode)e.ToJson()).ToArray()),
            ["seconds"] = new System.Text.Json.Nodes.JsonObject(r.Seconds.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
            ["pair"] = r.Pair.ToJson(),
        };
        AtomicFile.WriteAllText(Path.Combine(r.OutDir, $"results{suffix}.json"), json.ToJsonString(new() { WriteIndented = true }));
        var path = Path.Combine(r.OutDir, $"report{suffix}.md");
        AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }

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

    static ScottPlot.Plot NewPlot()
    {
        if (!FontsRegistered.Value) Console.Error.WriteLine("warning: no DejaVu Sans font found; plots will have no text (apt-get install fonts-dejavu-core)");
        return new ScottPlot.Plot();
    }

    static void PlotLosses(DemoResult r, string path)
    {
        var plot = NewPlot();
        var genrecal = File.Exists(r.GenRecalMetrics) ? MetricsLog.Read(r.GenRecalMetrics) : [];
        // the baseline's step i is GenRecal's student step i, which comes after the stage-1 steps
        int stage1 = genrecal.Count(o => o["stage_name"]?.GetValue<string>() == nameof(Stage.Alignment));
        foreach (var (label, m, offset) in new[] { ("genrecal", genrecal, 0), ("sft", r.SftMetrics.Where(File.Exists).SelectMany(MetricsLog.Read).ToList(), stage1) })
        {
            foreach (var term in new[] { "ce_recal", "kl", "reg_ce", "reg_kl", "ce_student" })
            {
                var rows = m.Select((o, i) => (i, o)).Where(x => x.o[term] is not null).ToList();
                if (rows.Count == 0) continue;
                var s = plot.Add.Scatter(rows.Select(x => (double)(x.i + offset)).ToArray(), rows.Select(x => x.o[term]!.GetValue<double>()).ToArray());
                s.LegendText = $"{label}: {term}";
                s.MarkerSize = 0;
            }
        }
        plot.XLabel("optimizer step (GenRecal's stages concatenated; the baseline aligned with its student steps)");
        plot.YLabel("loss");
        plot.ShowLegend();
        plot.SavePng(path, 900, 500);
    }

    static void PlotAccuracy(DemoResult r, List<string> families, string path)
    {
        var plot = NewPlot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int mi = 0; mi < r.Evaluations.Count; mi++)
        {
            var e = r.Evaluations[mi];
            var bars = families.Select((f, fi) => new ScottPlot.Bar
            {
                Position = fi * (r.Evaluations.Count + 1) + mi,
                Value = e.Families.TryGetValue(f, out var v) ? 100.0 * v.Correct / v.Total : 0,
                FillColor = palette.GetColor(mi),
            }).ToArray();
            plot.Add.Bars(bars).LegendText = e.Model;
        }
        plot.Axes.Bottom.SetTicks(families.Select((_, fi) => (double)(fi * (r.Evaluations.Count + 1) + (r.Evaluations.Count - 1) / 2.0)).ToArray(), families.ToArray());
        plot.YLabel("accuracy (%)");
        plot.ShowLegend();
        plot.SavePng(path, 900, 450);
    }
}
