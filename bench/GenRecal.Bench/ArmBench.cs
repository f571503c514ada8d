using System.Diagnostics;
using GenRecal.Data;
using GenRecal.Demo;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Runtime;
using GenRecal.Tokenization;
using GenRecal.Training;
using static TorchSharp.torch;

/// <summary>
/// The cost of the GenRecal arm against the SFT arm at the quick demo's model sizes, batch size and (scaled) step counts:
/// whole arms through the recipe, interleaved (SFT, GenRecal reading the teacher-feature store, GenRecal running the
/// teacher every step), then a per-part breakdown of one stage-2 step. Random weights: the cost of a step does not depend on
/// what the models know. Usage: arms [repeats] [step scale] [examples].
/// </summary>
static class ArmBench
{
    /// <param name="variants">GenRecal variants (<see cref="GenRecalVariants"/>) timed as arms of their own beside the default,
    /// each reading the same store (the default's arm pays its pass)</param>
    /// <param name="studentLayers">the student's depth (null: the quick preset's 2); the Recalibrator keeps its 2 blocks, so
    /// this shows the arm's cost where the bridge is a smaller part of the student, as for real pairs</param>
    /// <param name="live">also time the arm that runs the teacher every step</param>
    public static void Run(int repeats, double scale, int examples, string dtype = "fp32", IReadOnlyList<string>? variants = null, int? studentLayers = null, bool live = true)
    {
        var preset = studentLayers is { } layers ? DemoPreset.Quick with { StudentText = DemoPreset.Quick.StudentText with { NumHiddenLayers = layers } } : DemoPreset.Quick;
        var arms = new List<string> { GenRecalVariants.Default };
        foreach (var v in variants ?? []) { GenRecalVariants.Get(v); if (!arms.Contains(v)) arms.Add(v); }
        var root = Path.Combine(Path.GetTempPath(), $"genrecal-armbench-{Environment.ProcessId}");
        try
        {
            var (teacherDir, studentDir, dataPath) = Setup(root, preset, examples);
            int s1 = Steps(preset.Stage1Steps, scale), s2 = Steps(preset.Stage2Steps, scale), s3 = Steps(preset.Stage3Steps, scale);
            Console.WriteLine($"arms: quick sizes, student {preset.StudentText.NumHiddenLayers} layers, Recalibrator {preset.Training(0, []).Recalibrator.NumLayers} blocks, batch {preset.BatchSize}, {examples} examples; " +
                              $"GenRecal {s1}/{s2}/{s3} steps, SFT {s2}+{s3} (the same {s2 + s3} student steps); threads {get_num_threads()}; dtype {dtype}; GenRecal arms: {string.Join(", ", arms)}");
            var sft = new List<double>();
            var stored = arms.ToDictionary(a => a, _ => new List<(double Total, double Pass, double S1, double S2, double S3, double Tokens, double KbPerExample)>());
            var liveRuns = new List<(double Total, double S1, double S2, double S3)>();
            for (int r = 0; r < repeats; r++)
            {
                var runDir = Path.Combine(root, $"r{r}");
                var clock = Stopwatch.StartNew();
                Train(Plan(studentDir, teacherDir, dataPath, Path.Combine(runDir, "sft1"), [Stage.Sft], new() { [3] = s2 }, preset, "sft", dtype));
                Train(Plan(Path.Combine(runDir, "sft1", "student"), teacherDir, dataPath, Path.Combine(runDir, "sft"), [Stage.Sft], new() { [3] = s3 }, preset, "sft", dtype));
                sft.Add(clock.Elapsed.TotalSeconds);

                var steps = new Dictionary<int, int> { [1] = s1, [2] = s2, [3] = s3 };
                var line = $"  repeat {r + 1}: sft {sft[^1]:F1} s";
                foreach (var arm in arms)
                {
                    clock.Restart();
                    var plan = Plan(studentDir, teacherDir, dataPath, Path.Combine(runDir, arm), [Stage.Alignment, Stage.Distillation, Stage.FineTuning], steps, preset, "genrecal", dtype);
                    // one store per repeat, shared by the arms: the first pays the pass, the others read it
                    plan = plan with { Config = GenRecalVariants.Get(arm)(plan.Config), TeacherFeatureCache = Path.Combine(runDir, "teacher-features") };
                    var (perStage, store) = Train(plan);
                    stored[arm].Add((clock.Elapsed.TotalSeconds, store!.PassSeconds, perStage[Stage.Alignment], perStage[Stage.Distillation], perStage[Stage.FineTuning],
                                     store.PassTokens / Math.Max(store.PassSeconds, 1e-9), Directory.GetFiles(store.Dir).Sum(f => new FileInfo(f).Length) / 1024.0 / examples));
                    line += $", genrecal {arm} {stored[arm][^1].Total:F1} s (pass {stored[arm][^1].Pass:F1} s)";
                }

                if (live)
                {
                    clock.Restart();
                    var (livePerStage, _) = Train(Plan(studentDir, teacherDir, dataPath, Path.Combine(runDir, "live"), [Stage.Alignment, Stage.Distillation, Stage.FineTuning], steps, preset, "genrecal", dtype) with { StoreTeacherFeatures = false });
                    liveRuns.Add((clock.Elapsed.TotalSeconds, livePerStage[Stage.Alignment], livePerStage[Stage.Distillation], livePerStage[Stage.FineTuning]));
                    line += $", genrecal (live teacher) {liveRuns[^1].Total:F1} s";
                }
                Console.WriteLine(line);
                Directory.Delete(runDir, recursive: true);
            }
            Console.WriteLine($"SFT arm: {Spread(sft, "s")}");
            var first = stored[arms[0]];
            Console.WriteLine($"GenRecal arm, store (pass included): {Spread(first.Select(x => x.Total), "s")}; ratio to SFT {Spread(first.Select((x, i) => x.Total / sft[i]), "x")}");
            foreach (var arm in arms)
            {
                var runs = stored[arm];
                Console.WriteLine($"GenRecal arm {arm}, store (pass excluded, as when another arm or variant paid it): {Spread(runs.Select(x => x.Total - x.Pass), "s")}; ratio to SFT {Spread(runs.Select((x, i) => (x.Total - x.Pass) / sft[i]), "x")}; " +
                                  $"ms/step: stage 1 {Spread(runs.Select(x => x.S1), "")}, stage 2 {Spread(runs.Select(x => x.S2), "")}, stage 3 {Spread(runs.Select(x => x.S3), "")}");
            }
            if (live)
            {
                Console.WriteLine($"GenRecal arm, live teacher: {Spread(liveRuns.Select(x => x.Total), "s")}; ratio to SFT {Spread(liveRuns.Select((x, i) => x.Total / sft[i]), "x")}");
                Console.WriteLine($"ms/step, live:  stage 1 {Spread(liveRuns.Select(x => x.S1), "")}, stage 2 {Spread(liveRuns.Select(x => x.S2), "")}, stage 3 {Spread(liveRuns.Select(x => x.S3), "")}");
            }
            Console.WriteLine($"SFT arm ms/step: {Spread(sft.Select(x => 1000 * x / (s2 + s3)), "")} (whole arm / steps, model loading included)");
            Estimate(teacherDir, studentDir, dataPath, preset, new() { [1] = s1, [2] = s2, [3] = s3 }, arms, examples);
            Console.WriteLine($"teacher pass: {Spread(first.Select(x => x.Tokens), "tok/s")}, {Spread(first.Select(x => x.Pass), "s")} for {examples} examples, {Spread(first.Select(x => x.KbPerExample), "KB")} stored per example");
            Breakdown(teacherDir, studentDir, dataPath, preset, repeats, Path.Combine(root, "breakdown-features"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>What CostEstimate (pair-report's estimate from FLOPs) predicts for the same arms, to set beside the measurement.</summary>
    static void Estimate(string teacherDir, string studentDir, string dataPath, DemoPreset preset, Dictionary<int, int> steps, List<string> arms, int examples)
    {
        using var teacher = Pretrained.Load(teacherDir);
        using var student = Pretrained.Load(studentDir);
        var data = LlavaDataset.LoadStrict(dataPath);
        var training = preset.Training(0, steps);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, training.MaxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, training.MaxLength);
        var lengths = data.Select(e => ExampleLengths.Of(sc.Encode(e), tc.Encode(e), training.MaxLength)).ToList();
        foreach (var arm in arms)
        {
            var config = GenRecalVariants.Get(arm)(training);
            var e = CostEstimate.Of(teacher.Config.Text, student.Config.Text, config, lengths);
            string Arm(TeacherWork w) => $"{e.ArmRatio(config, examples, w):F2}x";
            Console.WriteLine($"estimate (matmul FLOPs, pair-report's) {arm}: stage 1 step {e.Stage1 / e.Sft:F2}x, stage 2 step {e.Stage2 / e.Sft:F2}x an SFT step; " +
                              $"arm {Arm(TeacherWork.StoreReused)} the SFT arm reusing the store, {Arm(TeacherWork.StoreFilled)} filling it, {Arm(TeacherWork.Live)} with the live teacher");
        }
    }

    static int Steps(int steps, double scale) => Math.Max(2, (int)Math.Round(steps * scale));

    /// <summary>Median [min, max] of a few repeats.</summary>
    static string Spread(IEnumerable<double> values, string unit)
    {
        var v = values.Order().ToList();
        double median = v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
        string F(double x) => x >= 100 ? x.ToString("F0") : x >= 10 ? x.ToString("F1") : x.ToString("F2");
        return $"{F(median)} [{F(v[0])}, {F(v[^1])}]{(unit == "" ? "" : " " + unit)}";
    }

    /// <summary>Runs a plan; returns ms/step of each stage (from the progress reports' stage clocks) and the feature store.</summary>
    static (Dictionary<Stage, double> MsPerStep, TeacherFeatureStore? Store) Train(DistillationPlan plan)
    {
        var perStage = new Dictionary<Stage, double>();
        using var recipe = new DistillationRecipe(plan);
        recipe.Run(new InlineProgress<TrainingProgress>(p => { if (p.Step == p.TotalSteps) perStage[p.Stage] = p.Elapsed.TotalMilliseconds / p.TotalSteps; }));
        return (perStage, recipe.TeacherFeatures);
    }

    sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    static DistillationPlan Plan(string student, string teacher, string data, string run, Stage[] stages, Dictionary<int, int> steps, DemoPreset preset, string method, string dtype) => new()
    {
        StudentDir = student, TeacherDir = method == "sft" ? null : teacher, DataPath = data, OutDir = run, Stages = stages,
        Config = preset.Training(0, steps) with { Method = method, Dtype = dtype },
        TeacherFeatureCache = Path.Combine(run, "teacher-features"),
    };

    static (string Teacher, string Student, string Data) Setup(string root, DemoPreset preset, int examples)
    {
        var dataDir = Path.Combine(root, "data");
        SyntheticBenchmark.Generate(dataDir, new SyntheticBenchmark.Options(1, 1, 1, 0, Transfer: examples, Only: preset.Families));
        var dataPath = Path.Combine(dataDir, "transfer.jsonl");
        var corpus = LlavaDataset.LoadStrict(dataPath).SelectMany(e => e.Turns.Select(t => t.Value.Replace("<image>", ""))).Concat(Enumerable.Range(0, 1000).Select(i => i.ToString())).ToList();
        var teacher = Create(Path.Combine(root, "teacher"), ModelTokenizer.Build(preset.TeacherTokenizer, corpus, ChatTemplate.ChatML), preset.TeacherText, preset.TeacherVision, 1);
        var student = Create(Path.Combine(root, "student"), ModelTokenizer.Build(preset.StudentTokenizer, corpus, ChatTemplate.Llama3), preset.StudentText, preset.StudentVision, 2);
        return (teacher, student, dataPath);
    }

    static string Create(string dir, ModelTokenizer tok, LanguageModelConfig text, VisionConfig vision, int seed)
    {
        var config = new ModelConfig(text with { VocabSize = tok.VocabSize }, vision, tok.ImageTokenId);
        manual_seed(seed);
        using var model = Pretrained.Create(config);
        Pretrained.Save(model, config, tok, dir);
        return dir;
    }

    /// <summary>
    /// Where a stage-2 step's time goes, each part timed alone (forward and backward) on the same fixed batches, interleaved:
    /// the student (body, its CE), the Recalibrator (both passes: student question and the regularizer's teacher question),
    /// the teacher's head and the four losses on its two outputs, reading the store, and the live teacher forward it replaces.
    /// </summary>
    static void Breakdown(string teacherDir, string studentDir, string dataPath, DemoPreset preset, int repeats, string cacheRoot)
    {
        using var teacher = Pretrained.Load(teacherDir);
        using var student = Pretrained.Load(studentDir);
        ParameterGroups.Freeze(teacher.Model);
        var config = preset.Training(0, new() { [2] = 1 });
        var data = LlavaDataset.LoadStrict(dataPath);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, config.MaxLength);
        using var store = new TeacherFeatureStore(cacheRoot, teacher, dataPath, config);
        store.Fill(data, tc);
        manual_seed(3);
        var rec = new Recalibrator(config.Recalibrator, student.Config.Text, teacher.Config.Text.HiddenSize);
        var step = new GenRecalLossStep(teacher.Model, student.Model, rec, config);
        var batches = Enumerable.Range(0, Math.Clamp(data.Count / preset.BatchSize, 1, 8)).Select(i => data.Skip(i * preset.BatchSize).Take(preset.BatchSize).ToList()).ToList();
        var parts = new (string Name, Action<List<ConversationExample>, ModelBatch, ModelBatch> Run)[]
        {
            ("whole stage-2 loss, store (fwd+bwd)", (ex, tb, sb) => step.Compute(tb, sb, Stage.Distillation, store.Batch(ex, tb, config.Recalibrator.AnswerSource)).Loss.backward()),
            ("whole stage-2 loss, live teacher (fwd+bwd)", (ex, tb, sb) => step.Compute(tb, sb, Stage.Distillation).Loss.backward()),
            ("student body + CE (fwd+bwd)", (ex, tb, sb) => GenRecalLossStep.StudentOnly(student.Model, sb).Loss.backward()),
            ("student body (fwd)", (ex, tb, sb) => { using var g = no_grad(); GenRecalLossStep.Hidden(student.Model, sb); }),
            ("Recalibrator x2 (fwd+bwd)", (ex, tb, sb) =>
            {
                var tf = store.Batch(ex, tb, config.Recalibrator.AnswerSource);
                var t = GenRecalLossStep.SplitOf(tb);
                var s = GenRecalLossStep.SplitOf(sb);
                var zqs = zeros(sb.Lengths.Length, s.QuestionLengths.Max(), student.Config.Text.HiddenSize).requires_grad_();
                var a = rec.Project(tf.AnswerInput);
                var r1 = rec.Forward(zqs, s.QuestionLengths, s.QuestionPositions, a, t.AnswerLengths, t.AnswerPositions);
                var r2 = rec.Forward(rec.Project(tf.Question), t.QuestionLengths, t.QuestionPositions, a, t.AnswerLengths, t.AnswerPositions);
                (r1.sum() + r2.sum()).backward();
            }),
            ("Recalibrator, student question (fwd+bwd)", (ex, tb, sb) => RecalibratorPass(rec, store.Batch(ex, tb, config.Recalibrator.AnswerSource), tb, sb, student.Config.Text.HiddenSize, regularizer: false)),
            ("Recalibrator, teacher question (regularizer) (fwd+bwd)", (ex, tb, sb) => RecalibratorPass(rec, store.Batch(ex, tb, config.Recalibrator.AnswerSource), tb, sb, student.Config.Text.HiddenSize, regularizer: true)),
            ("teacher head + CE + KL x2 (fwd+bwd)", (ex, tb, sb) =>
            {
                var tf = store.Batch(ex, tb, config.Recalibrator.AnswerSource);
                var t = GenRecalLossStep.SplitOf(tb);
                var (rows, targets) = GenRecalLossStep.ScoredRows(tb, t);
                Tensor total = zeros(1);
                for (int k = 0; k < 2; k++)
                {
                    var r = randn(rows.shape[0], teacher.Config.Text.HiddenSize).requires_grad_();
                    var logits = teacher.Model.Head(r);
                    total = total + DistillationLosses.CrossEntropy(logits, targets) + DistillationLosses.ForwardKl(tf.Targets, logits, config.KlTemperature);
                }
                total.backward();
            }),
            ("read the store", (ex, tb, sb) => store.Batch(ex, tb, config.Recalibrator.AnswerSource)),
            ("live teacher features (fwd)", (ex, tb, sb) => TeacherFeatures.Compute(teacher.Model, tb, config.Recalibrator.AnswerSource, config.KlTemperature)),
        };
        var ms = parts.ToDictionary(p => p.Name, _ => new List<double>());
        using var noGc = new NoGcRegion();
        for (int r = 0; r < repeats + 1; r++)
            foreach (var (name, run) in parts)
            {
                var clock = new Stopwatch();
                foreach (var ex in batches)
                {
                    noGc.Boundary();
                    using var scope = NewDisposeScope();
                    using var tb = tc.Collate(ex);
                    using var sb = sc.Collate(ex);
                    clock.Start();
                    run(ex, tb, sb);
                    clock.Stop();
                    foreach (var p in student.Model.parameters().Concat(rec.parameters())) p.grad?.zero_();
                }
                if (r > 0) ms[name].Add(clock.Elapsed.TotalMilliseconds / batches.Count); // the first round warms up
            }
        double Mean(Func<ModelBatch, GenRecalLossStep.Split, IEnumerable<int>> f, Collator c) => batches.Average(ex =>
        {
            using var b = c.Collate(ex);
            return f(b, GenRecalLossStep.SplitOf(b)).Average();
        });
        Console.WriteLine($"mean lengths: student question {Mean((b, s) => s.QuestionLengths, sc):F0}, teacher question {Mean((b, s) => s.QuestionLengths, tc):F0}, " +
                          $"teacher answer {Mean((b, s) => s.AnswerLengths, tc):F1}, student sequence {Mean((b, s) => b.Lengths, sc):F0}, teacher sequence {Mean((b, s) => b.Lengths, tc):F0}");
        Console.WriteLine("stage-2 step breakdown, ms per batch (median [min, max] of interleaved rounds; optimizer, clipping and collation not included):");
        foreach (var (name, _) in parts) Console.WriteLine($"  {name}: {Spread(ms[name], "")}");
    }

    /// <summary>One of the loss step's two Recalibrator passes, forward and backward: the student's question (a stand-in of
    /// its width and lengths) or the teacher's stored question features (the regularizer).</summary>
    static void RecalibratorPass(Recalibrator rec, TeacherFeatures tf, ModelBatch tb, ModelBatch sb, int studentHidden, bool regularizer)
    {
        var t = GenRecalLossStep.SplitOf(tb);
        var s = GenRecalLossStep.SplitOf(sb);
        var a = rec.Project(tf.AnswerInput);
        var r = regularizer
            ? rec.Forward(rec.Project(tf.Question), t.QuestionLengths, t.QuestionPositions, a, t.AnswerLengths, t.AnswerPositions)
            : rec.Forward(zeros(sb.Lengths.Length, s.QuestionLengths.Max(), studentHidden).requires_grad_(), s.QuestionLengths, s.QuestionPositions, a, t.AnswerLengths, t.AnswerPositions);
        r.sum().backward();
    }
}
