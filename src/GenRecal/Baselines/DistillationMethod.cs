namespace GenRecal.Baselines;

/// <summary>
/// How a student learns from a teacher. GenRecal runs its three stages; the others are the methods a user would
/// otherwise pick, run as one student stage through the same recipe, trainer, data order and LR schedule.
/// </summary>
public enum DistillationMethod
{
    /// <summary>The student's own next-token loss on the data's answers; no teacher.</summary>
    Sft,
    /// <summary>Token-level logit distillation: forward KL(teacher ‖ student) at answer tokens + CE. Same vocabulary only.</summary>
    Kd,
    /// <summary>Sequence-level KD (Kim &amp; Rush 2016): the teacher's greedy answers, re-encoded by the student, are the targets.</summary>
    SeqKd,
    /// <summary>Universal Logit Distillation (Boizard et al. 2024): sorted-probability L1 + CE; any vocabularies.</summary>
    Uld,
    /// <summary>GenRecal's stages 1-3 (the Recalibrator bridges the vocabularies).</summary>
    GenRecal,
}

public static class DistillationMethods
{
    public static readonly IReadOnlyDictionary<string, DistillationMethod> ByName = new Dictionary<string, DistillationMethod>
    {
        ["sft"] = DistillationMethod.Sft, ["kd"] = DistillationMethod.Kd, ["seqkd"] = DistillationMethod.SeqKd,
        ["uld"] = DistillationMethod.Uld, ["genrecal"] = DistillationMethod.GenRecal,
    };

    public static string Name(this DistillationMethod m) => ByName.First(kv => kv.Value == m).Key;

    public static DistillationMethod Parse(string name, string source) => ByName.TryGetValue(name, out var m) ? m
        : throw new ArgumentException($"{source}: unknown method '{name}' (known: {string.Join(", ", ByName.Keys)})");

    /// <summary>Whether the method needs the teacher loaded (GenRecal's need depends on its stages).</summary>
    public static bool NeedsTeacher(this DistillationMethod m) => m is DistillationMethod.Kd or DistillationMethod.SeqKd or DistillationMethod.Uld;

    /// <summary>Whether the teacher runs forward in every training step (logit methods).</summary>
    public static bool ScoresWithTeacher(this DistillationMethod m) => m is DistillationMethod.Kd or DistillationMethod.Uld;
}
