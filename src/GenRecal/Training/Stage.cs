namespace GenRecal.Training;

/// <summary>The training stages. Sft is the baseline: stage 3's recipe from the initial student, no teacher.</summary>
public enum Stage
{
    Alignment = 1,
    Distillation = 2,
    FineTuning = 3,
    Sft = 0,
}

public static class StageExtensions
{
    public static bool UsesTeacher(this Stage s) => s is Stage.Alignment or Stage.Distillation;
    public static string Name(this Stage s) => s switch
    {
        Stage.Alignment => "stage1-alignment",
        Stage.Distillation => "stage2-distillation",
        Stage.FineTuning => "stage3-sft",
        _ => "sft-baseline",
    };
}
