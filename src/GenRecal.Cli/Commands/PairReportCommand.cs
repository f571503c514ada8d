using System.CommandLine;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Training;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal pair-report: what differs between teacher and student on a data file, before training.</summary>
public static class PairReportCommand
{
    public static Command Create()
    {
        var teacher = new Option<string>("--teacher") { Description = "teacher model directory", Required = true };
        var student = new Option<string>("--student") { Description = "student model directory", Required = true };
        var data = new Option<string>("--data") { Description = "LLaVA-format JSON lines", Required = true };
        var maxLength = new Option<int>("--max-length") { Description = "sequence limit used in training", DefaultValueFactory = _ => 256 };
        var config = new Option<string?>("--config") { Description = "training config JSON whose steps, batch and stage-2 settings the cost estimate assumes (default: the defaults)" };
        var json = new Option<bool>("--json") { Description = "print JSON instead of a table" };
        var cmd = new Command("pair-report", "Preflight report on a teacher/student pair") { teacher, student, data, maxLength, config, json };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var training = r.GetValue(config) is { } path ? TrainingConfig.Load(path) : null;
            var loaded = LlavaDataset.Load(r.GetValue(data)!);
            var report = PairReport.Build(Pretrained.Load(r.GetValue(teacher)!), Pretrained.Load(r.GetValue(student)!), loaded.Examples, r.GetValue(maxLength), training);
            if (r.GetValue(json))
            {
                var j = report.ToJson();
                j["unusable_data_lines"] = loaded.Problems.Count;
                Console.WriteLine(j.ToJsonString(new() { WriteIndented = true }));
            }
            else Print(report, loaded.Problems);
            return report.HasBlockingProblems || loaded.Problems.Count > 0 ? ExitCodes.InputError : ExitCodes.Success;
        }));
        return cmd;
    }

    public static void Print(PairReport r, IReadOnlyList<DataProblem> problems)
    {
        var t = new Table().AddColumn("").AddColumn("teacher").AddColumn("student");
        void Row(string name, Func<PairSide, string> f) => t.AddRow(name, Markup.Escape(f(r.Teacher)), Markup.Escape(f(r.Student)));
        Row("tokenizer", s => s.Tokenizer);
        Row("vocabulary", s => s.VocabSize.ToString("N0"));
        Row("hidden width / layers", s => $"{s.Hidden} / {s.Layers}");
        Row("image tokens per image", s => s.ImageTokens?.ToString() ?? "text-only");
        Row("tokens per character", s => s.TokensPerChar.ToString("F3"));
        Row("chat template", s => s.Template);
        Row("sequences over max length", s => s.OverLength.ToString());
        Row("answers cut off (fails training)", s => s.AnswerCutOff.ToString());
        Row("images without vision encoder", s => s.MissingVision.ToString());
        Row("text outside the vocabulary (<unk>)", s => s.UnknownTokens.ToString());
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"examples: {r.Examples}; identical token boundaries: [bold]{r.IdenticalBoundaryShare:P1}[/]; " +
            $"shared token strings: {r.SharedTokenStrings} (same id: {r.SameIdShare:P1}, same relative order: {r.OrderAgreement:P1})");
        if (r.Cost is { } cost)
        {
            var (e, c) = (cost.Estimate, cost.Config);
            static string X(double? v) => v is { } x ? x.ToString("F2") + "x" : "n/a";
            AnsiConsole.MarkupLine($"cost estimate (matmul FLOPs of the language models, vision encoders not counted; per example, against a student SFT step of {e.Sft / 1e9:G3} GFLOP): " +
                $"Recalibrator {e.RecalibratorParameters:N0} parameters; stage 1 step {X(e.Stage1 / e.Sft)}; stage 2 step {X(e.Stage2 / e.Sft)} (regularizer {X(e.Stage2Regularizer / e.Sft)} of it); " +
                $"teacher pass {X(e.TeacherPass / e.Sft)}");
            AnsiConsole.MarkupLine($"GenRecal arm at {c.StepsFor(1)}/{c.StepsFor(2)}/{c.StepsFor(3)} steps against SFT for {c.StepsFor(2) + c.StepsFor(3)}: " +
                $"[bold]{X(cost.ArmRatio(TeacherWork.StoreFilled))}[/] filling the teacher-feature store ({cost.StoredExamples} examples), " +
                $"{X(cost.ArmRatio(TeacherWork.StoreReused))} reusing it, {X(cost.ArmRatio(TeacherWork.Live))} running the teacher every step");
        }
        foreach (var p in problems.Take(10)) AnsiConsole.MarkupLine($"[yellow]unusable line[/] {Markup.Escape(p.ToString())}");
        if (problems.Count > 10) AnsiConsole.MarkupLine($"[yellow]... {problems.Count - 10} more unusable lines[/]");
    }
}
