using System.CommandLine;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Tensors;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal eval: the model alone answers the questions; accuracy overall and per family.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "model directory", Required = true };
        var data = new Option<string>("--data") { Description = "LLaVA-format JSON lines", Required = true };
        var output = new Option<string?>("--out") { Description = "write the result as JSON here" };
        var cmd = new Command("eval", "Evaluate a model on a question-answering file") { model, data, output };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            // --out is checked first: a bad path found after evaluating would throw the result away
            if (r.GetValue(output) is { } outPath) CheckOutputFile(outPath);
            var examples = LlavaDataset.LoadStrict(r.GetValue(data)!);
            var pm = Pretrained.Load(r.GetValue(model)!);
            PromptLimits.CheckAll(pm, examples, MaxNewTokens, r.GetValue(data)!);
            EvaluationResult result = null!;
            InlineProgressDisplay.Run(AnsiConsole.Progress().AutoClear(true), (ctx, refresh) =>
            {
                var task = ctx.AddTask("evaluating", maxValue: examples.Count);
                result = Evaluator.Run(pm, examples, MaxNewTokens, progress: new InlineProgress<int>(n => { task.Value = n; refresh(); }));
            });
            Print([result]);
            var json = result.ToJson().ToJsonString(new() { WriteIndented = true });
            if (r.GetValue(output) is { } path) AtomicFile.WriteAllText(path, json);
            else Console.WriteLine(json);
            return ExitCodes.Success;
        }));
        return cmd;
    }

    /// <summary>Tokens generated per answer (the evaluator's default, named here so the length check uses the same).</summary>
    const int MaxNewTokens = 16;

    /// <summary>A file we can create or replace: not a folder, in a folder that exists and is writable.</summary>
    public static void CheckOutputFile(string path)
    {
        if (Directory.Exists(path)) throw new ArgumentException($"{path}: --out is a directory; give a file name");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (File.Exists(dir)) throw new ArgumentException($"{path}: --out's folder {dir} is a file");
        try
        {
            Directory.CreateDirectory(dir);
            var probe = Path.Combine(dir, $".genrecal-write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{path}: cannot write --out there ({e.Message})");
        }
    }

    public static void Print(IReadOnlyList<EvaluationResult> results)
    {
        var families = results.SelectMany(r => r.Families.Keys).Distinct().Order().ToList();
        var t = new Table().AddColumn("model").AddColumn(new TableColumn("accuracy").RightAligned());
        foreach (var f in families) t.AddColumn(new TableColumn(f).RightAligned());
        foreach (var r in results)
            t.AddRow([r.Model, $"{r.Accuracy:P1} ({r.Correct}/{r.Total})", .. families.Select(f => r.Families.TryGetValue(f, out var v) ? $"{(double)v.Correct / v.Total:P0} ({v.Correct}/{v.Total})" : "-")]);
        AnsiConsole.Write(t);
    }
}
