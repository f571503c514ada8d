using System.Diagnostics;
using System.Text.Json.Nodes;
using GenRecal.Baselines;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tokenization;
using GenRecal.Training;

namespace GenRecal.Demo;

/// <summary>One trained student of the demo: its row name, how it learnt, and where its run lives.</summary>
public sealed record DemoArm(string Name, string Method, string Description, string RunDir, IReadOnlyList<string> MetricsFiles);

/// <summary>What the demo measured.</summary>
public sealed record DemoResult(DemoPreset Preset, int Seed, string Variant, string OutDir, PairReport Pair, List<EvaluationResult> Evaluations,
                                Dictionary<string, double> Seconds, IReadOnlyList<DemoArm> Arms, int TeacherAnswered, int TeacherSilent);

/// <summary>
/// The end-to-end benchmark on one machine, in the transfer-set regime large VLMs are distilled in: a teacher
/// trained on its own large set T; a distillation set S drawn apart from T, with gold answers on a fraction only
/// (the rest answered by the teacher); every student arm starts from the same initial student and gets the same
/// student optimizer steps, batch size and LR schedule step for step (two cycles: GenRecal's stage 2, then its
/// stage 3, where the LR restarts). Rows: teacher; sft (labelled part of S); seqkd, uld, genrecal, genrecal-paper
/// (all of S, across tokenizers); sft-same-tokenizer and kd-same-tokenizer (a student identical but for using the
/// teacher's tokenizer: what token-level distillation can give in this regime). All are scored on one test split.
/// </summary>
public sealed class DemoRunner(DemoPreset preset, string outDir, int seed, Action<string>? log = null, string variant = GenRecalVariants.Default)
{
    readonly Dictionary<string, double> seconds = new();
    readonly List<DemoArm> arms = [];

    /// <summary>Train nothing: evaluate the teacher and the arms already in OUT and report on them (after an upgrade of
    /// the report, or to re-score). Every arm's student must exist.</summary>
    public bool ReportOnly { get; init; }

    public DemoResult Run(Action<DistillationPlan>? train = null)
    {
        train ??= plan => new DistillationRecipe(plan).Run();
        var dataDir = Path.Combine(outDir, "data");
        Timed("data", () =>
        {
            if (File.Exists(Path.Combine(dataDir, "transfer.jsonl"))) { log?.Invoke("reusing the benchmark in " + dataDir); return; }
            if (ReportOnly) throw new FileNotFoundException($"{dataDir}: no benchmark to report on");
            log?.Invoke($"making the benchmark (teacher's set {preset.Train}, distillation set {preset.Transfer} of which {preset.Labelled} labelled, test {preset.Test})");
            SyntheticBenchmark.Generate(dataDir, new SyntheticBenchmark.Options(preset.Train, preset.Val, preset.Test, seed,
                ExplainedAnswers: preset.ExplainedAnswers, Transfer: preset.Transfer, Only: preset.Families));
        });
        var splits = SyntheticBenchmark.Splits.ToDictionary(s => s, s => LlavaDataset.LoadStrict(Path.Combine(dataDir, $"{s}.jsonl")));
        var corpus = splits.Values.SelectMany(examples => examples)
            .SelectMany(e => e.Turns.Select(t => t.Value.Replace("<image>", ""))).Concat(Enumerable.Range(0, 1000).Select(i => i.ToString())).ToList(); // every number the benchmark can ask about

        var teacherDir = Path.Combine(outDir, "runs", "teacher", "student");
        var teacherRun = Path.Combine(outDir, "runs", "teacher");
        if (File.Exists(Path.Combine(teacherDir, "config.json")))
        {
            log?.Invoke("reusing the teacher in " + teacherDir);
            Recorded("teacher", teacherRun);
        }
        else
        {
            if (ReportOnly) throw new FileNotFoundException($"{teacherDir}: no trained teacher to report on");
            var init = CreateModel(Path.Combine(outDir, "models", "teacher-init"), ModelTokenizer.Build(preset.TeacherTokenizer, corpus, ChatTemplate.ChatML),
                preset.TeacherText, preset.TeacherVision, seed + 1);
            log?.Invoke($"training the teacher on its own set ({preset.TeacherSteps} steps)");
            Fresh(teacherRun);
            TimedTraining("teacher", teacherRun, () => train(Plan(init, null, Path.Combine(dataDir, "train.jsonl"), teacherRun, [Stage.Sft], new() { [3] = preset.TeacherSteps })));
        }
        var teacher = Pretrained.Load(teacherDir); // disposed after the pair report
        var studentInit = CreateModel(Path.Combine(outDir, "models", "student-init"), ModelTokenizer.Build(preset.StudentTokenizer, corpus, ChatTemplate.Llama3),
            preset.StudentText, preset.StudentVision, seed + 2);
        // identical to the student (same seed, sizes) but for the tokenizer, which is the teacher's
        var sameTokInit = CreateModel(Path.Combine(outDir, "models", "student-same-tokenizer-init"), teacher.Tokenizer, preset.StudentText, preset.StudentVision, seed + 2);

        // S: gold answers on the labelled part; the teacher answers the rest (cached, shared with seqkd's targets)
        var transfer = splits["transfer"];
        var cachePath = Path.Combine(outDir, "cache", "teacher-answers.jsonl");
        string labelled = Path.Combine(dataDir, "labelled.jsonl"), completedPath = Path.Combine(dataDir, "completed.jsonl"), transferPath = Path.Combine(dataDir, "transfer.jsonl");
        int silent = 0;
        Timed("teacher-answers", () =>
        {
            log?.Invoke($"the teacher answers the distillation set ({transfer.Count} questions, cached in {cachePath})");
            var answers = new TeacherAnswers(teacher, cachePath, preset.Training(seed, []).TeacherAnswerTokens).For(transfer);
            var labelledIds = transfer.Take(preset.Labelled).Select(e => e.Id).ToHashSet();
            var teacherById = transfer.Select((e, i) => (e.Id, a: answers[i])).Where(p => !labelledIds.Contains(p.Id)).ToDictionary(p => p.Id, p => p.a);
            silent = teacherById.Values.Count(string.IsNullOrWhiteSpace); // the teacher said nothing: no target to learn (seqkd drops them too)
            var lines = File.ReadLines(transferPath).Where(l => !string.IsNullOrWhiteSpace(l)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            File.WriteAllLines(labelled, lines.Where(o => labelledIds.Contains(o["id"]!.GetValue<string>())).Select(o => o.ToJsonString()));
            File.WriteAllLines(completedPath, lines.Select(o =>
            {
                var id = o["id"]!.GetValue<string>();
                if (labelledIds.Contains(id)) return o.ToJsonString();
                if (string.IsNullOrWhiteSpace(teacherById[id])) return null;
                o["conversations"]!.AsArray().Last(t => t!["from"]!.GetValue<string>() is "gpt" or "assistant")!["value"] = teacherById[id];
                o.Remove("answer"); // an unlabelled example: the gold answer is not known to the run
                o["answer_source"] = "teacher";
                return o.ToJsonString();
            }).OfType<string>());
        });

        Arm("sft", "sft", "SFT on the labelled part of S", studentInit, labelled, train);
        Arm("seqkd", "seqkd", "sequence-level KD: the teacher's greedy answers to all of S, re-encoded by the student", studentInit, transferPath, train, teacherDir, cachePath);
        var cfg = preset.Training(seed, []);
        Arm("uld", "uld", $"ULD (sorted-probability L1, λ = {cfg.LossWeights.Uld}) + CE on S, gold where labelled, the teacher's answers elsewhere", studentInit, completedPath, train, teacherDir);
        GenRecalArm(variant == GenRecalVariants.Default ? "genrecal" : $"genrecal-{variant}", variant, studentInit, teacherDir, completedPath, train);
        if (variant == GenRecalVariants.Default) GenRecalArm("genrecal-paper", "paper", studentInit, teacherDir, completedPath, train);
        Arm("sft-same-tokenizer", "sft", "SFT on the labelled part of S; the teacher's tokenizer", sameTokInit, labelled, train);
        Arm("kd-same-tokenizer", "kd", $"token-level KD (forward KL, T = {cfg.KlTemperature}) + CE on S; the teacher's tokenizer", sameTokInit, completedPath, train, teacherDir);

        var test = splits["test"];
        var evaluations = new List<EvaluationResult>();
        Timed("evaluation", () =>
        {
            foreach (var (name, dir) in arms.Select(a => (a.Name, Path.Combine(a.RunDir, "student"))).Prepend(("teacher", teacherDir)))
            {
                log?.Invoke($"evaluating {name}");
                using var model = Pretrained.Load(dir);
                // as many new tokens as a teacher answer may have: the byte-level models spend one per character
                evaluations.Add(Evaluator.Run(model, test, maxNewTokens: cfg.TeacherAnswerTokens) with { Model = name });
            }
        });
        using var student = Pretrained.Load(studentInit);
        var pair = PairReport.Build(teacher, student, splits["transfer"], 256);
        teacher.Dispose();
        return new DemoResult(preset, seed, variant, outDir, pair, evaluations, seconds, arms, transfer.Count - preset.Labelled - silent, silent);
    }

    /// <summary>A single-stage method over two LR cycles: stage 2's length, then stage 3's with a new data order.</summary>
    void Arm(string name, string method, string description, string init, string data, Action<DistillationPlan> train, string? teacher = null, string? cache = null)
    {
        var run = Path.Combine(outDir, "runs", name);
        var cycle1 = Path.Combine(run, "cycle1");
        var arm = new DemoArm(name, method, description, run, [Path.Combine(cycle1, "metrics.jsonl"), Path.Combine(run, "metrics.jsonl")]);
        arms.Add(arm);
        var first = Plan(init, teacher, data, cycle1, [Stage.Sft], new() { [3] = preset.Stage2Steps }, method) with { TeacherAnswerCache = cache };
        TimedArm(arm, data, Inputs(WithoutGenRecalSettings(first.Config), init, teacher, data), () =>
        {
            train(first);
            var second = Plan(Path.Combine(cycle1, "student"), teacher, data, run, [Stage.Sft], new() { [3] = preset.Stage3Steps }, method) with { TeacherAnswerCache = cache };
            train(second with { Config = second.Config with { Seed = seed + 1 } }); // a new data order, as GenRecal's stage 3 gets
        });
    }

    void GenRecalArm(string name, string variantName, string init, string teacher, string data, Action<DistillationPlan> train)
    {
        var run = Path.Combine(outDir, "runs", name);
        var arm = new DemoArm(name, "genrecal", $"GenRecal stages {preset.Stage1Steps}/{preset.Stage2Steps}/{preset.Stage3Steps} on S: " + GenRecalVariants.All[variantName].Description,
                              run, [Path.Combine(run, "metrics.jsonl")]);
        arms.Add(arm);
        var plan = Plan(init, teacher, data, run, [Stage.Alignment, Stage.Distillation, Stage.FineTuning],
            new() { [1] = preset.Stage1Steps, [2] = preset.Stage2Steps, [3] = preset.Stage3Steps }, "genrecal")
            // one teacher pass for every GenRecal arm and variant of this teacher and data
            with { TeacherFeatureCache = Path.Combine(outDir, "cache", "teacher-features") };
        plan = plan with { Config = GenRecalVariants.Get(variantName)(plan.Config) };
        TimedArm(arm, data + "#" + variantName, Inputs(plan.Config, init, teacher, data), () => train(plan));
    }

    /// <summary>Trains an arm unless OUT holds its student from an identical earlier run (same preset, seed, method,
    /// data): every arm is deterministic for these, so a rerun (another variant, an interrupted demo) reuses it.</summary>
    void TimedArm(DemoArm arm, string data, string inputs, Action trainArm)
    {
        if (ReportOnly)
        {
            if (!File.Exists(Path.Combine(arm.RunDir, "student", "config.json"))) throw new FileNotFoundException($"{arm.RunDir}: no trained student to report on");
            Recorded(arm.Name, arm.RunDir);
            return;
        }
        // paths relative to OUT, so a moved or copied output directory still recognises its arms
        var stamp = new JsonObject
        {
            ["preset"] = preset.Name, ["seed"] = seed, ["method"] = arm.Method, ["data"] = Path.GetRelativePath(outDir, data), ["description"] = arm.Description,
            ["inputs"] = inputs,
        }.ToJsonString();
        var stampPath = Path.Combine(arm.RunDir, "arm.json");
        if (File.Exists(Path.Combine(arm.RunDir, "student", "config.json")) && File.Exists(stampPath) && File.ReadAllText(stampPath) == stamp)
        {
            log?.Invoke($"reusing {arm.Name} in {arm.RunDir}");
            Recorded(arm.Name, arm.RunDir);
            return;
        }
        log?.Invoke($"training {arm.Name}: {arm.Description}");
        Fresh(arm.RunDir);
        TimedTraining(arm.Name, arm.RunDir, trainArm);
        Tensors.AtomicFile.WriteAllText(stampPath, stamp);
    }

    /// <summary>A single-stage arm's config with the settings only GenRecal reads (the Recalibrator's, its stage-2
    /// switches) at fixed values, so its reuse hash does not change when they do. The values are the defaults of
    /// before stop 10 (joint stage 2), which keeps the hashes of arms trained then.</summary>
    internal static TrainingConfig WithoutGenRecalSettings(TrainingConfig config) =>
        config with { Recalibrator = new RecalibratorConfig(), RegularizerInStage2 = true, TrainRecalibratorInStage2 = true };

    /// <summary>A hash of everything an arm's result depends on besides its name: the training config, the initial
    /// student's and the teacher's files, and the data file. A change in any of them retrains the arm.</summary>
    internal static string Inputs(TrainingConfig config, string init, string? teacher, string data) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(
            $"{config.ToJson()}\n{TeacherAnswers.Identity(init)}\n{(teacher is null ? "" : TeacherAnswers.Identity(teacher))}\n{TeacherAnswers.FileHash(data)}")))[..24];

    DistillationPlan Plan(string student, string? teacher, string data, string run, Stage[] stages, Dictionary<int, int> steps, string method = "sft") => new()
    {
        StudentDir = student, TeacherDir = teacher, DataPath = data, OutDir = run, Stages = stages, Config = preset.Training(seed, steps) with { Method = method },
    };

    static string CreateModel(string dir, ModelTokenizer tok, LanguageModelConfig text, VisionConfig vision, int seed)
    {
        var config = new ModelConfig(text with { VocabSize = tok.VocabSize }, vision, tok.ImageTokenId);
        TorchSharp.torch.manual_seed(seed);
        using var model = Pretrained.Create(config);
        Pretrained.Save(model, config, tok, dir);
        return dir;
    }

    static void Fresh(string runDir)
    {
        // runs are derived outputs: a new demo run replaces them (the teacher and data are reused)
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
    }

    void Timed(string name, Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        seconds[name] = Math.Round(sw.Elapsed.TotalSeconds, 1);
    }

    const string SecondsFile = "seconds.txt";

    /// <summary>Times a training and records the figure in its run directory, so a later run that reuses the result
    /// reports the time it was measured with.</summary>
    void TimedTraining(string name, string runDir, Action a)
    {
        Timed(name, a);
        Tensors.AtomicFile.WriteAllText(Path.Combine(runDir, SecondsFile), seconds[name].ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    void Recorded(string name, string runDir)
    {
        var file = Path.Combine(runDir, SecondsFile);
        if (File.Exists(file) && double.TryParse(File.ReadAllText(file), System.Globalization.CultureInfo.InvariantCulture, out var s)) seconds[name] = s;
    }
}
