using System.Text.Json;
using System.Text.Json.Serialization;
using GenRecal.Recalibration;

namespace GenRecal.Training;

/// <summary>Weights of the separately logged loss terms; the paper's default is a plain sum.</summary>
public sealed record LossWeights
{
    [JsonPropertyName("ce_recal")] public double CeRecal { get; init; } = 1;
    [JsonPropertyName("kl")] public double Kl { get; init; } = 1;
    [JsonPropertyName("reg_ce")] public double RegCe { get; init; } = 1;
    [JsonPropertyName("reg_kl")] public double RegKl { get; init; } = 1;
    [JsonPropertyName("ce_student")] public double CeStudent { get; init; } = 1;
    /// <summary>ULD's distillation weight λ (the ULD paper's setting, 1.5); used by method "uld" only.</summary>
    [JsonPropertyName("uld")] public double Uld { get; init; } = 1.5;
}

/// <summary>
/// Everything a distillation run is configured by (JSON, names in snake_case). Defaults follow
/// docs/METHOD.md: AdamW, LR linear 1e-4 → 1e-5 within each stage, plain loss sum, T = 1, the Recalibrator
/// frozen in stage 2 (the paper's figure; its table trains it jointly: measured worse, docs/RESULTS.md).
/// </summary>
public sealed record TrainingConfig
{
    /// <summary>sft, kd, seqkd, uld or genrecal (DistillationMethods.ByName); the baselines run one student stage ("sft").</summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "genrecal";
    /// <summary>Longest teacher answer generated for sequence-level KD and transfer sets, in teacher tokens.</summary>
    [JsonPropertyName("teacher_answer_tokens")] public int TeacherAnswerTokens { get; init; } = 64;
    [JsonPropertyName("steps")] public Dictionary<int, int> Steps { get; init; } = new() { [1] = 100, [2] = 100, [3] = 100 };
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 8;
    [JsonPropertyName("grad_accumulation")] public int GradAccumulation { get; init; } = 1;
    [JsonPropertyName("lr_start")] public double LrStart { get; init; } = 1e-4;
    [JsonPropertyName("lr_end")] public double LrEnd { get; init; } = 1e-5;
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; }
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }
    [JsonPropertyName("grad_clip")] public double GradClip { get; init; } = 1.0;
    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; } = 50;
    [JsonPropertyName("keep_checkpoints")] public int KeepCheckpoints { get; init; } = 2;
    [JsonPropertyName("seed")] public int Seed { get; init; } = 0;
    [JsonPropertyName("max_length")] public int MaxLength { get; init; } = 256;
    [JsonPropertyName("kl_temperature")] public double KlTemperature { get; init; } = 1.0;
    [JsonPropertyName("loss_weights")] public LossWeights LossWeights { get; init; } = new();
    [JsonPropertyName("recalibrator")] public RecalibratorConfig Recalibrator { get; init; } = new();
    /// <summary>Whether Algorithm 2 (the regularizer) also runs in stage 2; the paper does not say. It trains only the
    /// Recalibrator, so it runs only where the Recalibrator trains (<see cref="TrainRecalibratorInStage2"/>).</summary>
    [JsonPropertyName("regularizer_in_stage2")] public bool RegularizerInStage2 { get; init; } = true;
    /// <summary>Whether the Recalibrator keeps training in stage 2 (paper's table: jointly; its figure: frozen). Default
    /// frozen: on the demo's six seeds it gave the student +0.9 points [+0.1, +1.7] over the joint reading, at less cost.</summary>
    [JsonPropertyName("train_recalibrator_in_stage2")] public bool TrainRecalibratorInStage2 { get; init; }

    /// <summary>"fp32", or "bf16": bf16 compute with float32 master weights and optimizer state (<see cref="MixedPrecision"/>),
    /// in GenRecal's stages 1-3, sft and seqkd; kd and uld refuse it.</summary>
    [JsonPropertyName("dtype")] public string Dtype { get; init; } = MixedPrecision.Fp32;
    /// <summary>Whether the student's vision encoder trains in stages 2-3 and SFT. The paper keeps it frozen
    /// (real students come with a pretrained encoder); a model built from scratch, as in the demo, needs it.</summary>
    [JsonPropertyName("train_vision_encoder")] public bool TrainVisionEncoder { get; init; }

    /// <summary>Whether the Recalibrator trains in <paramref name="stage"/>: always in stage 1; in stage 2 when
    /// <see cref="TrainRecalibratorInStage2"/> says so.</summary>
    public bool RecalibratorTrains(Stage stage) => stage == Stage.Alignment || (stage == Stage.Distillation && TrainRecalibratorInStage2);

    /// <summary>Whether Algorithm 2 runs in <paramref name="stage"/>: always in stage 1; in stage 2 when
    /// <see cref="RegularizerInStage2"/> says so and the Recalibrator trains there (it reads no student feature, so a
    /// frozen Recalibrator leaves it nothing to train).</summary>
    public bool RunsRegularizer(Stage stage) => stage == Stage.Alignment || (stage == Stage.Distillation && RegularizerInStage2 && RecalibratorTrains(stage));

    [JsonIgnore] public Baselines.DistillationMethod MethodKind => Baselines.DistillationMethods.Parse(Method, "training config: method");

    public int StepsFor(int stage) => Steps.TryGetValue(stage, out var s) ? s : 0;

    /// <summary>Unknown keys are errors: a misspelt "lr_strat" silently ignored would train with the default.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, AllowDuplicateProperties = false,
    };

    public static TrainingConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config file not found", path);
        try
        {
            var c = JsonSerializer.Deserialize<TrainingConfig>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path}: empty config");
            c.Validate(path);
            return c;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid training config ({e.Message})");
        }
        catch (NotSupportedException e)
        {
            throw new InvalidDataException($"{path}: invalid training config ({e.Message})");
        }
    }

    public void Validate(string source)
    {
        // JSON null deserializes into these non-nullable members
        if (Steps is null || LossWeights is null || Recalibrator is null)
            throw new InvalidDataException($"{source}: steps, loss_weights and recalibrator must not be null");
        if (Steps.Keys.Any(k => k is < 1 or > 3)) throw new InvalidDataException($"{source}: steps keys must be stages 1, 2, 3; found {string.Join(", ", Steps.Keys)}");
        if (BatchSize < 1) throw new InvalidDataException($"{source}: batch_size must be at least 1");
        if (GradAccumulation < 1) throw new InvalidDataException($"{source}: grad_accumulation must be at least 1");
        if (Steps.Values.Any(s => s < 0)) throw new InvalidDataException($"{source}: steps must not be negative");
        if (CheckpointEvery < 0) throw new InvalidDataException($"{source}: checkpoint_every must not be negative");
        if (KeepCheckpoints < 1) throw new InvalidDataException($"{source}: keep_checkpoints must be at least 1");
        if (WarmupSteps < 0) throw new InvalidDataException($"{source}: warmup_steps must not be negative");
        if (MaxLength < 1) throw new InvalidDataException($"{source}: max_length must be at least 1");
        if (!double.IsFinite(WeightDecay) || WeightDecay < 0) throw new InvalidDataException($"{source}: weight_decay must be finite and non-negative");
        if (!double.IsFinite(GradClip) || GradClip < 0) throw new InvalidDataException($"{source}: grad_clip must be finite and non-negative");
        if (!double.IsFinite(KlTemperature) || KlTemperature <= 0) throw new InvalidDataException($"{source}: kl_temperature must be positive");
        if (Dtype is not (MixedPrecision.Fp32 or MixedPrecision.Bf16)) throw new InvalidDataException($"{source}: dtype '{Dtype}' is not supported (fp32, bf16)");
        var w = LossWeights;
        if (new[] { w.CeRecal, w.Kl, w.RegCe, w.RegKl, w.CeStudent, w.Uld }.Any(v => !double.IsFinite(v) || v < 0))
            throw new InvalidDataException($"{source}: loss_weights must be finite and non-negative");
        if (!(LrStart > 0) || !(LrEnd >= 0) || !double.IsFinite(LrStart) || !double.IsFinite(LrEnd)) throw new InvalidDataException($"{source}: lr_start must be positive and lr_end non-negative");
        Baselines.DistillationMethods.Parse(Method, $"{source}: method");
        if (TeacherAnswerTokens < 1) throw new InvalidDataException($"{source}: teacher_answer_tokens must be at least 1");
        if (Recalibrator.NumLayers < 1) throw new InvalidDataException($"{source}: recalibrator.num_layers must be at least 1");
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}
