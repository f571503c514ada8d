using System.CommandLine;
using GenRecal.Baselines;
using GenRecal.Training;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal distill: run GenRecal stages 1-3 (or any of them) on a teacher/student pair.</summary>
public static class DistillCommand
{
    public static Command Create()
    {
        var teacher = new Option<string?>("--teacher") { Description = "teacher model directory (needed by stages 1, 2)" };
        var student = new Option<string>("--student") { Description = "student model directory", Required = true };
        var data = new Option<string>("--data") { Description = "LLaVA-format JSON lines", Required = true };
        var output = new Option<string>("--out") { Description = "output directory", Required = true };
        var method = new Option<string?>("--method") { Description = $"how the student learns: {string.Join(", ", MethodNames)} (default: the config's method, genrecal)" };
        var stages = new Option<string?>("--stages") { Description = "comma-separated stages: 1,2,3 (genrecal; default all) or sft (the other methods' one stage)" };
        var steps = new Option<int?>("--steps") { Description = "optimizer steps per stage (overrides the config)" };
        var dtype = new Option<string?>("--dtype") { Description = "fp32, or bf16 (bf16 compute, float32 master weights and AdamW state; GenRecal stages 1-3, sft, seqkd)" };
        var batch = new Option<int?>("--batch-size") { Description = "examples per micro-batch (overrides the config)" };
        var config = new Option<string?>("--config") { Description = "training config JSON (see docs/ARCHITECTURE.md)" };
        var resume = new Option<bool>("--resume") { Description = "continue from OUT/checkpoints" };
        var allowBad = new Option<bool>("--allow-bad-lines") { Description = "skip unusable data lines (they are still reported)" };
        var features = new Option<string?>("--teacher-features") { Description = "folder of the teacher's stored stage 1-2 features (default OUT/teacher-features); runs sharing a teacher and data may share one" };
        var cmd = new Command("distill", "Distill a teacher into a student with GenRecal") { teacher, student, data, output, method, stages, steps, batch, config, resume, allowBad, features, dtype };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var c = Configure(r.GetValue(config), r.GetValue(steps), r.GetValue(batch), r.GetValue(method), r.GetValue(dtype));
            var plan = new DistillationPlan
            {
                TeacherDir = r.GetValue(teacher), StudentDir = r.GetValue(student)!, DataPath = r.GetValue(data)!, OutDir = r.GetValue(output)!,
                Stages = ParseStages(r.GetValue(stages) ?? (c.MethodKind == DistillationMethod.GenRecal ? "1,2,3" : "sft")),
                Config = c,
                Resume = r.GetValue(resume), AllowBadDataLines = r.GetValue(allowBad), TeacherFeatureCache = r.GetValue(features),
            };
            Run(plan);
            AnsiConsole.MarkupLine($"student: [bold]{Markup.Escape(Path.Combine(plan.OutDir, "student"))}[/]; metrics: {Markup.Escape(Path.Combine(plan.OutDir, "metrics.jsonl"))}");
            return ExitCodes.Success;
        }));
        return cmd;
    }

    /// <summary>The methods by name; "genrecal-paper" is GenRecal with the paper's answer source (the teacher's answer features z_al).</summary>
    public static IEnumerable<string> MethodNames => DistillationMethods.ByName.Keys.Append("genrecal-paper");

    public static TrainingConfig Configure(string? path, int? steps, int? batch, string? method = null, string? dtype = null)
    {
        var c = path is null ? new TrainingConfig() : TrainingConfig.Load(path);
        if (method is not null && !MethodNames.Contains(method))
            throw new ArgumentException($"--method: unknown method '{method}' (known: {string.Join(", ", MethodNames)})");
        if (method == "genrecal-paper") c = Demo.GenRecalVariants.Get("paper")(c with { Method = "genrecal" });
        else if (method is not null) c = c with { Method = DistillationMethods.Parse(method, "--method").Name() };
        if (steps is { } s) c = c with { Steps = new() { [1] = s, [2] = s, [3] = s } };
        if (batch is { } b) c = c with { BatchSize = b };
        if (dtype is not null)
        {
            if (dtype is not (MixedPrecision.Fp32 or MixedPrecision.Bf16)) throw new ArgumentException($"--dtype: '{dtype}' is not supported (fp32, bf16)");
            c = c with { Dtype = dtype };
        }
        c.Validate("command line");
        return c;
    }

    public static List<Stage> ParseStages(string text) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => s switch
    {
        "1" => Stage.Alignment,
        "2" => Stage.Distillation,
        "3" => Stage.FineTuning,
        "sft" => Stage.Sft,
        _ => throw new ArgumentException($"--stages: unknown stage '{s}' (use 1, 2, 3 or sft)"),
    }).ToList();

    /// <summary>Runs a plan with a progress bar on an interactive terminal, plain lines otherwise. Ctrl-C stops it
    /// between steps (exit 3), so the checkpoint on disk is whole; a second Ctrl-C ends the process at once.</summary>
    public static void Run(DistillationPlan plan)
    {
        using var recipe = new DistillationRecipe(plan);
        foreach (var w in recipe.Warnings) Console.Error.WriteLine($"warning: {w}");
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = !interrupt.IsCancellationRequested;
            interrupt.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            Train(recipe, interrupt.Token);
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            throw new TrainingStoppedException($"interrupted; {recipe.CheckpointNote()} (rerun the same command with --resume)");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    static void Train(DistillationRecipe recipe, CancellationToken cancel)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            int lastPrinted = 0;
            recipe.Run(new InlineProgress<TrainingProgress>(p =>
            {
                if (p.Step == p.TotalSteps || p.Step - lastPrinted >= Math.Max(1, p.TotalSteps / 10))
                {
                    lastPrinted = p.Step == p.TotalSteps ? 0 : p.Step;
                    Console.WriteLine($"{p.Stage.Name()} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.Lr:E2} ({p.Elapsed.TotalSeconds:F0}s)");
                }
            }), cancel);
            return;
        }
        InlineProgressDisplay.Run(AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn()),
            (ctx, refresh) =>
            {
                var tasks = new Dictionary<Stage, ProgressTask>();
                recipe.Run(new InlineProgress<TrainingProgress>(p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task)) tasks[p.Stage] = task = ctx.AddTask(p.Stage.Name(), maxValue: p.TotalSteps);
                    task.Value = p.Step;
                    task.Description = $"{p.Stage.Name()} loss {p.Loss:F3}";
                    refresh();
                }), cancel);
            });
    }
}
