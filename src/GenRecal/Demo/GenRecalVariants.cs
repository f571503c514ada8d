using GenRecal.Recalibration;
using GenRecal.Training;

namespace GenRecal.Demo;

/// <summary>
/// Named GenRecal configurations measured side by side (docs/RESULTS.md). "paper" is the method as
/// published; the others change one thing each, aimed at the weak points GENRECAL.md names.
/// </summary>
public static class GenRecalVariants
{
    public static readonly IReadOnlyDictionary<string, (string Description, Func<TrainingConfig, TrainingConfig> Apply)> All =
        new Dictionary<string, (string, Func<TrainingConfig, TrainingConfig>)>
        {
            ["paper"] = ("the paper's form: teacher answer features, NPE, 2 blocks, regularizer in stage 2, Recalibrator trained jointly", c => c),
            ["embeddings"] = ("teacher answer input embeddings instead of z_al (no copy shortcut)",
                c => c with { Recalibrator = c.Recalibrator with { AnswerSource = AnswerSource.TeacherEmbeddings } }),
            ["no-reg-stage2"] = ("Algorithm 2 only in stage 1", c => c with { RegularizerInStage2 = false }),
            ["frozen-recal-stage2"] = ("Recalibrator frozen in stage 2 (the paper's figure)", c => c with { TrainRecalibratorInStage2 = false }),
            ["no-npe"] = ("each side keeps its own positions", c => c with { Recalibrator = c.Recalibrator with { NewPositions = false } }),
            ["student-weighted"] = ("stage-2 student CE weighted 2x, KD terms 0.5x (loss-scale balance)",
                c => c with { LossWeights = new LossWeights { CeRecal = 0.5, Kl = 0.5, RegCe = 0.5, RegKl = 0.5, CeStudent = 2 } }),
        };

    public static Func<TrainingConfig, TrainingConfig> Get(string name) =>
        All.TryGetValue(name, out var v) ? v.Apply : throw new ArgumentException($"--variant: unknown variant '{name}' ({string.Join(", ", All.Keys)})");
}
