using GenRecal.Models;
using GenRecal.Tokenization;
using GenRecal.Training;

namespace GenRecal.Demo;

/// <summary>Sizes and step counts of the end-to-end demo. Quick: under 15 minutes on 2 cores; Full: the quoted results.</summary>
public sealed record DemoPreset
{
    public required string Name { get; init; }
    /// <summary>The teacher's own training set T (its "pretraining"): never shown to a student.</summary>
    public int Train { get; init; } = 6000;
    /// <summary>The distillation set S, drawn apart from T: what every student learns from.</summary>
    public int Transfer { get; init; } = 3000;
    /// <summary>Share of S with gold answers (the first examples, every family in turn); the rest are images and questions
    /// the teacher answers. SFT learns from the labelled part alone; the distillers from all of S.</summary>
    public double LabelledFraction { get; init; } = 0.1;
    public int Val { get; init; } = 120;
    public int Test { get; init; } = 600;
    /// <summary>Question families drawn. Reading drawn three-digit numbers is left out: no model, the teacher included,
    /// learnt it at these sizes (0 % on every run, docs/results/EARLIER.md), so it only dilutes every average.</summary>
    public IReadOnlyList<string> Families { get; init; } = ["attribute", "counting", "spatial", "chart", "reasoning"];
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
    /// <summary>The teacher reads bytes (one token per character), the student a compact gpt2 vocabulary: their token
    /// boundaries differ inside every word and number, as real cross-tokenizer pairs' do in places.</summary>
    public string TeacherTokenizer { get; init; } = ModelTokenizer.BytesBase;
    public string StudentTokenizer { get; init; } = "gpt2";

    public static DemoPreset Quick => new() { Name = "quick" };
    public static DemoPreset Full => new()
    {
        Name = "full", Train = 12000, Transfer = 4000, Val = 200, Test = 2000, TeacherSteps = 5000, Stage1Steps = 300, Stage2Steps = 1000, Stage3Steps = 1000,
    };
    /// <summary>Seconds-long miniature for the test suite: same code path, tiny sizes.</summary>
    public static DemoPreset Miniature => new()
    {
        Name = "miniature", Train = 30, Transfer = 20, LabelledFraction = 0.5, Val = 5, Test = 10, TeacherSteps = 6, Stage1Steps = 3, Stage2Steps = 3, Stage3Steps = 3, BatchSize = 4,
        TeacherText = Quick.TeacherText with { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, HeadDim = 8 },
        StudentText = Quick.StudentText with { HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, HeadDim = 4 },
    };

    public static DemoPreset ByName(string name) => name switch
    {
        "quick" => Quick, "full" => Full, "miniature" => Miniature,
        _ => throw new ArgumentException($"unknown demo preset '{name}' (quick, full, miniature)"),
    };

    /// <summary>Labelled examples of S: the SFT arms' whole training set.</summary>
    public int Labelled => Math.Max(1, (int)Math.Round(Transfer * LabelledFraction));

    /// <summary>Student optimizer steps of every arm: GenRecal stages 2+3 update the student; every other arm gets the same count.</summary>
    public int StudentSteps => Stage2Steps + Stage3Steps;

    public TrainingConfig Training(int seed, Dictionary<int, int> steps) => new()
    {
        Steps = steps, BatchSize = BatchSize, LrStart = LrStart, LrEnd = LrEnd, Seed = seed, CheckpointEvery = 0, KeepCheckpoints = 1, MaxLength = 256,
        TeacherAnswerTokens = ExplainedAnswers ? 96 : 24,
        // every demo model starts from scratch: there is no pretrained vision encoder to keep frozen
        TrainVisionEncoder = true,
    };
}
