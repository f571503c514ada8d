using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal summarize: mean and spread of demo results (results*.json) over seeds, as a markdown table.</summary>
public static class SummarizeCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "demo output directories (one per seed)", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("summarize", "Average demo results over seeds (markdown)") { runs };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            Console.Write(Summarize(r.GetValue(runs)!));
            return ExitCodes.Success;
        }));
        return cmd;
    }

    public static string Summarize(IEnumerable<string> dirs)
    {
        // (variant, model) -> accuracy per seed
        var table = new SortedDictionary<string, List<double>>(StringComparer.Ordinal);
        var seeds = new SortedSet<int>();
        foreach (var dir in dirs)
        {
            var files = Directory.Exists(dir) ? Directory.GetFiles(dir, "results*.json") : [];
            if (files.Length == 0) throw new FileNotFoundException($"{dir}: no results*.json (run genrecal demo there first)");
            bool sharedCounted = false;
            foreach (var file in files.Order(StringComparer.Ordinal))
            {
                var j = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
                var variant = j["variant"]!.GetValue<string>();
                seeds.Add(j["seed"]!.GetValue<int>());
                foreach (var e in j["evaluations"]!.AsArray())
                {
                    var model = e!["model"]!.GetValue<string>();
                    // teacher, initial and SFT students are shared by every variant of a seed: count them once
                    if (model != "genrecal" && sharedCounted) continue;
                    var key = model == "genrecal" ? $"genrecal ({variant})" : model;
                    if (!table.TryGetValue(key, out var list)) table[key] = list = [];
                    list.Add(e["accuracy"]!.GetValue<double>() * 100);
                }
                sharedCounted = true;
            }
        }
        var inv = CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"| model | mean accuracy | sd | per seed ({string.Join(", ", seeds)}) |");
        sb.AppendLine("|---|---:|---:|---|");
        foreach (var (key, values) in table)
        {
            double mean = values.Average();
            double sd = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : 0;
            sb.AppendLine($"| {key} | {mean.ToString("F1", inv)} | {sd.ToString("F1", inv)} | {string.Join(", ", values.Select(v => v.ToString("F1", inv)))} |");
        }
        return sb.ToString();
    }
}
