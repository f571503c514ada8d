using System.Diagnostics;
using System.Text.Json.Nodes;
using GenRecal.Baselines;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Runtime;
using GenRecal.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>Progress of a running stage, for a progress bar.</summary>
public sealed record TrainingProgress(Stage Stage, int Step, int TotalSteps, double Loss, double Lr, TimeSpan Elapsed);

/// <summary>What a distillation run reads and writes.</summary>
public sealed record DistillationPlan
{
    public required string StudentDir { get; init; }
    public string? TeacherDir { get; init; }
    public required string DataPath { get; init; }
    public required string OutDir { get; init; }
    public required IReadOnlyList<Stage> Stages { get; init; }
    public TrainingConfig Config { get; init; } = new();
    public bool Resume { get; init; }
    public bool AllowBadDataLines { get; init; }
    /// <summary>Where the teacher's generated answers are cached (seqkd); default OUT/teacher-answers.jsonl. Runs that share
    /// a teacher and data may share one file.</summary>
    public string? TeacherAnswerCache { get; init; }
    /// <summary>Where the teacher's stage 1-2 features are stored (<see cref="TeacherFeatureStore"/>); default
    /// OUT/teacher-features. Runs that share a teacher and data may share one folder (each key gets its own subfolder).</summary>
    public string? TeacherFeatureCache { get; init; }
    /// <summary>False runs the frozen teacher at every GenRecal step instead of storing its features once (for comparisons).</summary>
    public bool StoreTeacherFeatures { get; init; } = true;
}

/// <summary>
/// The GenRecal training recipe (setup, train, save_checkpoint, after torchtune's recipes): stages 1-3 in
/// sequence, each consuming the previous one's student and Recalibrator, or the SFT baseline (stage 3's loss
/// from the initial student). Output: OUT/student (HF layout), OUT/recalibrator, OUT/metrics.jsonl, OUT/checkpoints.
/// </summary>
public sealed class DistillationRecipe : IDisposable
{
    readonly DistillationPlan plan;
    readonly TrainingConfig config;
    List<ConversationExample> data;
    readonly PretrainedModel student;
    PretrainedModel? teacher;
    readonly DistillationMethod method;
    /// <summary>One per model for the whole run: each example tokenized and each image decoded once; disposed at the end.</summary>
    Collator studentCollator = null!;
    Collator? teacherCollator;
    /// <summary>Every example of the data file the teacher can encode (a superset of <see cref="data"/>): the teacher-feature
    /// store is filled with these, so runs whose students accept different lines still share its shards.</summary>
    List<ConversationExample> teacherExamples = [];
    TeacherFeatureStore? featureStore;
    Recalibrator? recalibrator;
    readonly CheckpointStore checkpoints;
    readonly MetricsLog metrics;
    readonly RunLock runLock;
    CheckpointState? resumeFrom;
    string? resumeDir;

    public DistillationRecipe(DistillationPlan plan)
    {
        this.plan = plan;
        config = plan.Config;
        config.Validate("training config");
        method = config.MethodKind;
        if (plan.Stages.Count == 0) throw new ArgumentException("no stages to run");
        if (method != DistillationMethod.GenRecal && plan.Stages.Any(s => s != Stage.Sft))
            throw new ArgumentException($"method '{config.Method}' trains the student in one stage ('sft'); stages 1-3 belong to method 'genrecal'");
        if (config.Dtype == MixedPrecision.Bf16 && method.ScoresWithTeacher())
            throw new ArgumentException($"dtype bf16 is implemented for GenRecal's stages and the student-only methods (sft, seqkd); " +
                $"method '{method.Name()}' runs in fp32");
        bool needsTeacher = plan.Stages.Any(s => s.UsesTeacher()) || method.NeedsTeacher();
        if (needsTeacher && plan.TeacherDir is null)
            throw new ArgumentException(method == DistillationMethod.GenRecal ? "stages 1 and 2 need a teacher" : $"method '{config.Method}' needs a teacher");
        CheckOutDir(plan);
        runLock = RunLock.Acquire(plan.OutDir);
        try
        {
            checkpoints = new CheckpointStore(Path.Combine(plan.OutDir, "checkpoints"), config.KeepCheckpoints);
            metrics = new MetricsLog(Path.Combine(plan.OutDir, "metrics.jsonl"));
            var latest = checkpoints.Latest();
            if (latest is not null && !plan.Resume)
                throw new ArgumentException($"{plan.OutDir} already holds checkpoints ({latest.Value.Dir}); resume the run to continue it, or choose another output directory");
            if (plan.Resume && latest is null)
                throw new ArgumentException($"cannot resume: {checkpoints.Root} holds no checkpoint; start the run afresh instead");
            if (plan.Resume && latest is not null)
            {
                (resumeDir, resumeFrom) = latest.Value;
                Warnings.AddRange(RunRecord.CheckResume(plan.OutDir, config, plan.DataPath));
                CheckpointStore.VerifyOptimizer(resumeDir, resumeFrom);
            }
            var loaded = LlavaDataset.Load(plan.DataPath);

            student = Pretrained.Load(resumeDir is null ? plan.StudentDir : Path.Combine(resumeDir, "student"));
            if (needsTeacher)
            {
                teacher = Pretrained.Load(plan.TeacherDir!);
                ParameterGroups.Freeze(teacher.Model);
                teacher.Model.eval(); // never trained: any dropout stays off, so stored teacher features equal recomputed ones
                // GenRecal's stages 1-2 only: seqkd's answers are generated (and cached) in float32 whatever the dtype
                if (plan.Stages.Any(s => s.UsesTeacher())) MixedPrecision.CastFrozenTeacher(teacher, config);
                if (SameDir(plan.TeacherDir!, plan.StudentDir)) Warnings.Add($"teacher and student are the same directory ({plan.TeacherDir}): the student learns from itself");
            }
            data = Validated(loaded);
            if (teacher is not null)
            {
                if (teacher.Vlm is null != (student.Vlm is null) && data.Any(d => d.ImagePath is not null))
                    throw new ArgumentException("the data has images, so teacher and student must both be vision-language models");
                if (method == DistillationMethod.Kd && KdMismatch(teacher, student) is { } why)
                    throw new ArgumentException($"method 'kd' needs one vocabulary for teacher and student, and {plan.TeacherDir} and {plan.StudentDir} differ: {why}; use 'uld', 'seqkd' or 'genrecal' across vocabularies");
                if (plan.Stages.Any(s => s.UsesTeacher())) recalibrator = LoadOrCreateRecalibrator();
                if (method == DistillationMethod.SeqKd)
                {
                    // Kim & Rush: the teacher's greedy answers replace the data's; the teacher is not needed after that
                    var answers = new TeacherAnswers(teacher, plan.TeacherAnswerCache ?? Path.Combine(plan.OutDir, "teacher-answers.jsonl"), config.TeacherAnswerTokens);
                    data = answers.Replace(data);
                    if (answers.Silent > 0) Warnings.Add($"the teacher answered {answers.Silent} example(s) with nothing; they are left out");
                    if (data.Count == 0) throw new ArgumentException($"{plan.TeacherDir}: the teacher answered every example of {plan.DataPath} with nothing");
                    teacher.Model.Dispose();
                    teacher = null;
                    teacherCollator?.Dispose();
                    teacherCollator = null;
                }
            }
            RunRecord.Write(plan.OutDir, config, plan.DataPath);
        }
        catch
        {
            runLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Every line checked before step 1 with each model's own tokenizer and max_length, so a bad line is reported
    /// with all the others now, not as a failure at the batch that holds it hours in.
    /// </summary>
    List<ConversationExample> Validated(LlavaDataset.Result loaded)
    {
        var problems = new List<DataProblem>(loaded.Problems);
        // the run's collators: what they encode here is what every stage's batches reuse
        studentCollator = new Collator(student.Model, student.Tokenizer, config.MaxLength);
        teacherCollator = teacher is null ? null : new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        var models = new List<(string Role, Collator Collator)> { ("student", studentCollator) };
        if (teacherCollator is not null) models.Add(("teacher", teacherCollator));
        var usable = new List<ConversationExample>();
        foreach (var ex in loaded.Examples)
        {
            var found = models.Select(m => m.Collator.Problem(ex) is { } p ? $"{m.Role}: {p}" : null).OfType<string>().ToList();
            if (!found.Any(f => f.StartsWith("teacher:", StringComparison.Ordinal)) && teacherCollator is not null) teacherExamples.Add(ex);
            if (found.Count == 0) usable.Add(ex);
            else problems.Add(new DataProblem(plan.DataPath, ex.LineNumber, string.Join("; ", found)));
        }
        if (problems.Count > 0 && !plan.AllowBadDataLines)
            throw new InvalidDataException(LlavaDataset.Unusable(plan.DataPath, problems).Message + " (allowing bad lines skips them)");
        if (problems.Count > 0)
            Warnings.Add($"skipping {problems.Count} unusable line(s) of {plan.DataPath}: " + string.Join("; ", problems.OrderBy(p => p.Line).Select(p => $"line {p.Line}: {p.Problem}")));
        if (usable.Count == 0) throw new InvalidDataException($"{plan.DataPath}: no usable examples");
        return usable;
    }

    /// <summary>Folders of OUT a run writes or deletes; an input model inside one would be overwritten. (An input elsewhere
    /// in OUT is fine: the demo trains its second SFT cycle into runs/sft from runs/sft/cycle1/student.)</summary>
    static readonly string[] WrittenDirs = ["student", "recalibrator", "checkpoints"];

    /// <summary>OUT must be a folder we can write whose outputs overwrite neither input model.</summary>
    static void CheckOutDir(DistillationPlan plan)
    {
        if (File.Exists(plan.OutDir)) throw new ArgumentException($"{plan.OutDir}: the output path is an existing file; it must be a folder");
        foreach (var (role, dir) in new[] { ("student", plan.StudentDir), ("teacher", plan.TeacherDir) })
        {
            if (dir is null) continue;
            if (SameDir(plan.OutDir, dir) || WrittenDirs.Select(w => Path.Combine(plan.OutDir, w)).Any(w => SameDir(w, dir) || IsInside(dir, w)))
                throw new ArgumentException($"{plan.OutDir}: the output directory {(SameDir(plan.OutDir, dir) ? "is" : "contains")} the {role} directory {dir}, which the run would overwrite; choose another output directory");
        }
        try
        {
            Directory.CreateDirectory(plan.OutDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{plan.OutDir}: cannot create the output folder ({e.Message})");
        }
    }

    static string FullDir(string dir) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
    static bool SameDir(string a, string b) => FullDir(a) == FullDir(b);
    static bool IsInside(string dir, string parent) => FullDir(dir).StartsWith(FullDir(parent) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>Where the run can continue from, for messages when it stops (a folder is named only if it holds a checkpoint).</summary>
    public string CheckpointNote() => checkpoints.Latest() is { } latest
        ? $"the last good checkpoint is kept in {latest.Dir}; resume the run to continue from it"
        : "no checkpoint was written yet, so a new run starts from the beginning";

    /// <summary>Releases OUT's lock (Run releases it too when it ends).</summary>
    public void Dispose() => runLock.Dispose();

    /// <summary>Why token-level KD cannot pair the two models position by position (null when it can): the vocabulary
    /// (ids and strings), the heads' sizes and the chat template must all be the teacher's.</summary>
    static string? KdMismatch(PretrainedModel teacher, PretrainedModel student) =>
        teacher.Tokenizer.VocabularyDifference(student.Tokenizer)
        ?? (teacher.Config.Text.VocabSize != student.Config.Text.VocabSize ? $"LM head sizes {teacher.Config.Text.VocabSize} and {student.Config.Text.VocabSize}" : null)
        ?? (teacher.Tokenizer.Template != student.Tokenizer.Template ? "different chat templates (answers would be laid out differently)" : null);

    public TrainingConfig Config => config;
    /// <summary>Things a user should know before the run (the CLI prints them).</summary>
    public List<string> Warnings { get; } = [];
    public PretrainedModel Student => student;
    internal PretrainedModel? Teacher => teacher;
    public Recalibrator? Recalibrator => recalibrator;
    public IReadOnlyList<ConversationExample> Data => data;
    /// <summary>The run's teacher-feature store once <see cref="Run"/> has filled it; null without GenRecal stages 1-2 or
    /// when <see cref="DistillationPlan.StoreTeacherFeatures"/> is off.</summary>
    public TeacherFeatureStore? TeacherFeatures => featureStore;
    internal CheckpointStore Checkpoints => checkpoints;

    Recalibrator LoadOrCreateRecalibrator()
    {
        var fromCheckpoint = resumeDir is null ? null : Path.Combine(resumeDir, "recalibrator");
        var previous = Path.Combine(plan.OutDir, "recalibrator");
        foreach (var dir in new[] { fromCheckpoint, previous })
            if (dir is not null && File.Exists(Path.Combine(dir, Recalibrator.ConfigFileName))) return Recalibrator.Load(dir);
        if (!plan.Stages.Contains(Stage.Alignment))
        {
            // frozen in stage 2, an untrained Recalibrator would stay random: its KD terms would carry no teacher knowledge
            if (!config.TrainRecalibratorInStage2)
                throw new ArgumentException($"stage 2 without stage 1 needs a trained Recalibrator (none in {previous}): with train_recalibrator_in_stage2 false (the default) it stays frozen in stage 2. Run stage 1 first (--stages 1,2), or set train_recalibrator_in_stage2: true");
            Warnings.Add($"stage 2 runs without a stage-1 Recalibrator (none in {previous}): it starts untrained and trains in stage 2 only");
        }
        manual_seed(config.Seed + 17);
        return new Recalibrator(config.Recalibrator, student.Config.Text, teacher!.Config.Text.HiddenSize);
    }

    /// <summary>Runs every planned stage not yet completed, then writes OUT/student and OUT/recalibrator.</summary>
    public void Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancel = default)
    {
        using var release = runLock;
        using var students = studentCollator;
        using var teachers = teacherCollator;
        TorchGc.Settle();
        if (resumeFrom is not null)
        {
            var r = resumeFrom;
            metrics.KeepOnly(o => StageOrder(Enum.Parse<Stage>(o["stage_name"]!.GetValue<string>())) < StageOrder(r.Stage)
                                  || (o["stage_name"]!.GetValue<string>() == r.Stage.ToString() && o["step"]!.GetValue<int>() <= r.Step));
        }
        else if (File.Exists(metrics.Path)) File.Delete(metrics.Path);
        var completed = resumeFrom?.CompletedStages.ToList() ?? [];
        using var store = FilledStore(completed);
        foreach (var stage in plan.Stages)
        {
            if (completed.Contains(stage)) continue;
            int start = resumeFrom is { StageComplete: false } r && r.Stage == stage ? r.Step : 0;
            RunStage(stage, start, completed, progress, cancel);
            completed.Add(stage);
        }
        Pretrained.Save(student.Model, student.Config, student.Tokenizer, Path.Combine(plan.OutDir, "student"));
        recalibrator?.Save(Path.Combine(plan.OutDir, "recalibrator"));
    }

    int StageOrder(Stage s) => plan.Stages.ToList().IndexOf(s);

    /// <summary>The teacher's features for stages 1-2, computed once before the first of them (or found from an earlier
    /// run); null when no stage left to run needs the teacher's features or the plan turns the store off.</summary>
    TeacherFeatureStore? FilledStore(List<Stage> completed)
    {
        if (!plan.StoreTeacherFeatures || !plan.Stages.Any(s => s.UsesTeacher() && !completed.Contains(s))) return null;
        featureStore = new TeacherFeatureStore(plan.TeacherFeatureCache ?? Path.Combine(plan.OutDir, "teacher-features"), teacher!, plan.DataPath, config);
        featureStore.Fill(teacherExamples, teacherCollator!);
        return featureStore;
    }

    void RunStage(Stage stage, int startStep, List<Stage> completed, IProgress<TrainingProgress>? progress, CancellationToken cancel)
    {
        int total = stage == Stage.Sft ? config.StepsFor(3) : config.StepsFor((int)stage);
        var stageRecalibrator = stage.UsesTeacher() ? recalibrator : null;
        var trainable = ParameterGroups.Configure(stage, student.Model, stageRecalibrator, teacher?.Model, config);
        using var mixed = config.Dtype == MixedPrecision.Bf16 ? MixedStage(stageRecalibrator) : null; // (Module.to keeps requires_grad)
        student.Model.train();
        recalibrator?.train();
        IList<Parameter> optimized = mixed is null ? trainable : mixed.Masters.ToList();
        var optimizer = optim.AdamW(optimized, config.LrStart, 0.9, 0.999, 1e-8, config.WeightDecay);
        if (startStep > 0 && resumeDir is not null)
        {
            CheckpointStore.LoadOptimizer(resumeDir, resumeFrom!, optimizer);
        }
        var lossStep = stage.UsesTeacher() ? new GenRecalLossStep(teacher!.Model, student.Model, recalibrator!, config) : null;
        var logitStep = stage == Stage.Sft && method.ScoresWithTeacher() ? new LogitDistillationLossStep(teacher!.Model, student.Model, method, config) : null;
        var stageTeacherCollator = lossStep is null && logitStep is null ? null : teacherCollator;
        int perStep = config.BatchSize * config.GradAccumulation;
        var clock = Stopwatch.StartNew();
        using var noGc = new NoGcRegion();
        for (int step = startStep; step < total; step++)
        {
            noGc.Boundary();
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var stepClock = Stopwatch.StartNew();
            double lr = LinearSchedule.At(step, total, config.LrStart, config.LrEnd, config.WarmupSteps);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            optimizer.zero_grad();
            var sums = new Dictionary<string, double>();
            long tokens = 0;
            for (int micro = 0; micro < config.GradAccumulation; micro++)
            {
                var examples = Batch(stage, (long)step * perStep + (long)micro * config.BatchSize);
                using var sb = studentCollator.Collate(examples);
                using var tb = stageTeacherCollator?.Collate(examples);
                tokens += sb.Tokens + (tb?.Tokens ?? 0);
                var terms = lossStep is not null ? lossStep.Compute(tb!, sb, stage, featureStore?.Batch(examples, tb!, config.Recalibrator.AnswerSource))
                    : logitStep is not null ? logitStep.Compute(tb!, sb)
                    : GenRecalLossStep.StudentOnly(student.Model, sb);
                var values = terms.Named().ToDictionary(p => p.Name, p => p.Value.item<float>());
                if (values.Any(kv => !float.IsFinite(kv.Value)))
                    throw new TrainingStoppedException($"{stage.Name()} step {step + 1}: loss is not finite ({string.Join(", ", values.Select(kv => $"{kv.Key}={kv.Value}"))}); " +
                        CheckpointNote());
                (terms.Loss / config.GradAccumulation).backward();
                mixed?.AccumulateGradients();
                foreach (var (k, v) in values) sums[k] = sums.GetValueOrDefault(k) + v / config.GradAccumulation;
            }
            double gradNorm = config.GradClip > 0 ? nn.utils.clip_grad_norm_(optimized, config.GradClip) : 0;
            if (!double.IsFinite(gradNorm))
                throw new TrainingStoppedException($"{stage.Name()} step {step + 1}: gradient norm is not finite; {CheckpointNote()}");
            optimizer.step();
            mixed?.MastersToModels();
            var record = new JsonObject
            {
                ["stage"] = stage == Stage.Sft ? "sft" : ((int)stage).ToString(),
                ["stage_name"] = stage.ToString(),
                ["step"] = step + 1,
                ["lr"] = lr,
                ["grad_norm"] = gradNorm,
                ["tokens_per_s"] = Math.Round(tokens / Math.Max(1e-9, stepClock.Elapsed.TotalSeconds), 1),
            };
            foreach (var (k, v) in sums) record[k] = v;
            metrics.Append(record);
            bool last = step + 1 == total;
            if (last || (config.CheckpointEvery > 0 && (step + 1) % config.CheckpointEvery == 0))
                SaveCheckpoint(stage, step + 1, last, completed, optimizer, (long)(step + 1) * perStep, mixed);
            progress?.Report(new TrainingProgress(stage, step + 1, total, sums["loss"], lr, clock.Elapsed));
        }
        if (total == 0) SaveCheckpoint(stage, 0, true, completed, optimizer, 0, mixed);
        mixed?.AsFloat32(); // the stage's result: the float32 masters, not their bf16 rounding
        student.Model.eval();
        recalibrator?.eval();
    }

    /// <summary>bf16 mixed precision for a stage: float32 masters of the weights it trains (the student's and, in stages
    /// 1-2, the Recalibrator's) and float32 copies of the ones it freezes, taken from the float32 weights, then the
    /// student and the Recalibrator cast to bf16.
    /// The frozen teacher is not cast here (<see cref="MixedPrecision.CastFrozenTeacher"/>): its features are cast into
    /// the Recalibrator, the Recalibrator's output to the teacher's dtype before its head.</summary>
    MixedPrecision MixedStage(Recalibrator? stageRecalibrator) =>
        MixedPrecision.Over(stageRecalibrator is null ? [student.Model] : [student.Model, stageRecalibrator]);

    void SaveCheckpoint(Stage stage, int step, bool stageComplete, List<Stage> completed, OptimizerHelper optimizer, long position, MixedPrecision? mixed)
    {
        mixed?.AsFloat32();
        var state = new CheckpointState
        {
            Stage = stage, Step = step, StageComplete = stageComplete, DataPosition = position, RngSeed = config.Seed,
            CompletedStages = stageComplete ? [.. completed, stage] : [.. completed],
        };
        checkpoints.Save(state, student.Model, student.Config, student.Tokenizer, recalibrator, optimizer);
        mixed?.AsBf16();
    }

    /// <summary>Examples at data position <paramref name="position"/> of a stage: a seeded permutation per epoch.</summary>
    List<ConversationExample> Batch(Stage stage, long position)
    {
        var batch = new List<ConversationExample>(config.BatchSize);
        for (long k = position; k < position + config.BatchSize; k++)
        {
            long epoch = k / data.Count;
            var order = Permutation((int)epoch, stage);
            batch.Add(data[order[(int)(k % data.Count)]]);
        }
        return batch;
    }

    readonly Dictionary<(int, Stage), int[]> permutations = new();

    int[] Permutation(int epoch, Stage stage)
    {
        if (permutations.TryGetValue((epoch, stage), out var p)) return p;
        p = Enumerable.Range(0, data.Count).ToArray();
        new Random(unchecked(config.Seed * 1_000_003 + (int)stage * 10_007 + epoch) & 0x7fffffff).Shuffle(p); // stable across processes
        return permutations[(epoch, stage)] = p;
    }
}
