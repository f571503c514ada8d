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
            var examples = LlavaDataset.LoadStrict(r.GetValue(data)!);
            var pm = Pretrained.Load(r.GetValue(model)!);
            EvaluationResult result = null!;
            InlineProgressDisplay.Run(AnsiConsole.Progress().AutoClear(true), (ctx, refresh) =>
            {
                var task = ctx.AddTask("evaluating", maxValue: examples.Count);
                result = Evaluator.Run(pm, examples, progress: new InlineProgress<int>(n => { task.Value = n; refresh(); }));
            });
            Print([result]);
            var json = result.ToJson().ToJsonString(new() { WriteIndented = true });
            if (r.GetValue(output) is { } path) AtomicFile.WriteAllText(path, json);
            else Console.WriteLine(json);
            return ExitCodes.Success;
        }));
        return cmd;
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
