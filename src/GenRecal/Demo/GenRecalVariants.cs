using GenRecal.Recalibration;
using GenRecal.Training;

namespace GenRecal.Demo;

/// <summary>
/// Named GenRecal configurations measured side by side (docs/RESULTS.md). "embeddings" is the default (the
/// best measured: the library's defaults), "paper" the method as published; the others change one thing each
/// from the default (no-reg-stage2 from joint-recal-stage2), aimed at the weak points docs/METHOD.md names.
/// </summary>
public static class GenRecalVariants
{
    public static readonly IReadOnlyDictionary<string, (string Description, Func<TrainingConfig, TrainingConfig> Apply)> All =
        new Dictionary<string, (string, Func<TrainingConfig, TrainingConfig>)>
        {
            ["embeddings"] = ("the default: teacher answer input embeddings instead of z_al (no copy shortcut), NPE, 2 blocks, Recalibrator frozen in stage 2 (so no regularizer there)",
                c => c with { Recalibrator = c.Recalibrator with { AnswerSource = AnswerSource.TeacherEmbeddings } }),
            ["paper"] = ("the paper's form: teacher answer features z_al, otherwise as the default",
                c => c with { Recalibrator = c.Recalibrator with { AnswerSource = AnswerSource.TeacherHidden } }),
            ["joint-recal-stage2"] = ("the Recalibrator trained jointly in stage 2 with Algorithm 2 (the paper's stage table; the default until docs/RESULTS.md's six seeds)",
                c => c with { TrainRecalibratorInStage2 = true, RegularizerInStage2 = true }),
            ["no-reg-stage2"] = ("the Recalibrator trained jointly in stage 2, Algorithm 2 only in stage 1", c => c with { TrainRecalibratorInStage2 = true, RegularizerInStage2 = false }),
            ["no-npe"] = ("each side keeps its own positions", c => c with { Recalibrator = c.Recalibrator with { NewPositions = false } }),
            ["no-kd"] = ("ablation: every Recalibrator term weighted 0, so stage 2 is the student's own CE on the same data and schedule (what the teacher's signal through the bridge adds)",
                c => c with { LossWeights = new LossWeights { CeRecal = 0, Kl = 0, RegCe = 0, RegKl = 0, CeStudent = 1 } }),
            ["kl-t2"] = ("the Recalibrator's KL at temperature 2 (softer teacher distributions: where same-tokenizer KD gains over hard answers)",
                c => c with { KlTemperature = 2 }),
            ["student-weighted"] = ("stage-2 student CE weighted 2x, KD terms 0.5x (loss-scale balance)",
                c => c with { LossWeights = new LossWeights { CeRecal = 0.5, Kl = 0.5, RegCe = 0.5, RegKl = 0.5, CeStudent = 2 } }),
        };

    /// <summary>The configuration the demo runs unless told otherwise: the library's defaults.</summary>
    public const string Default = "embeddings";

    public static Func<TrainingConfig, TrainingConfig> Get(string name) =>
        All.TryGetValue(name, out var v) ? v.Apply : throw new ArgumentException($"unknown GenRecal variant '{name}' ({string.Join(", ", All.Keys)})");
}
