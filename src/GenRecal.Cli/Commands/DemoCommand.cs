using System.CommandLine;
using System.Globalization;
using System.Text;
using GenRecal.Demo;
using GenRecal.Tensors;
using GenRecal.Training;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal demo: the whole mission end to end, with report.md and plots.</summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "quick (the README's main command) or full (docs/RESULTS.md)", DefaultValueFactory = _ => "quick" };
        var output = new Option<string>("--out") { Description = "output directory", DefaultValueFactory = _ => "out/demo" };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var variant = new Option<string>("--variant") { Description = $"run the GenRecal arm in another configuration, as row genrecal-NAME, reusing every other arm already in OUT: {string.Join(", ", GenRecalVariants.All.Keys)}", DefaultValueFactory = _ => GenRecalVariants.Default };
        var explained = new Option<bool>("--explained") { Description = "train and evaluate on longer explained answers (\"... Answer: x\")" };
        var reportOnly = new Option<bool>("--report-only") { Description = "train nothing: evaluate the models already in OUT and write the report again" };
        var cmd = new Command("demo", "Make data, train a teacher, distill students with GenRecal and the baselines, and compare them") { preset, output, seed, variant, explained, reportOnly };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var p = DemoPreset.ByName(r.GetValue(preset)!);
            if (r.GetValue(explained)) p = p with { ExplainedAnswers = true };
            Run(p, r.GetValue(output)!, r.GetValue(seed), r.GetValue(variant)!, r.GetValue(reportOnly));
            return ExitCodes.Success;
        }));
        return cmd;
    }

    public static DemoResult Run(DemoPreset preset, string outDir, int seed, string variant = GenRecalVariants.Default, bool reportOnly = false)
    {
        GenRecalVariants.Get(variant); // fail before any work on an unknown name
        var runner = new DemoRunner(preset, outDir, seed, msg => AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(msg)}"), variant) { ReportOnly = reportOnly };
        var result = runner.Run(DistillCommand.Run);
        PairReportCommand.Print(result.Pair, []);
        EvalCommand.Print(result.Evaluations);
        var report = DemoReport.Write(result);
        AnsiConsole.MarkupLine($"report: [bold]{Markup.Escape(report)}[/]");
        return result;
    }
}
