using GenRecal.Models;
using GenRecal.Training;

/// <summary>
/// CostEstimate for the paper's two pairs at real sizes, from their language models' published configs (the vision
/// encoders are not counted): what the GenRecal arm costs against SFT where the Recalibrator's two blocks are a small
/// part of a 28- or 32-layer student, unlike the demo's 2-layer one. Lengths: an image of 7 tiles of 256 tokens
/// (InternVL's dynamic tiling; Qwen2-VL's dynamic resolution gives a similar count at ~900×900 px) plus a 30-token
/// question, answers of 20 to 300 tokens, the same in both tokenizers (both pairs share a tokenizer family).
/// </summary>
static class PaperPairCost
{
    static LanguageModelConfig Text(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, bool bias) => new()
    {
        VocabSize = vocab, HiddenSize = hidden, IntermediateSize = intermediate, NumHiddenLayers = layers,
        NumAttentionHeads = heads, NumKeyValueHeads = kvHeads, HeadDim = hidden / heads, AttentionBias = bias,
    };

    public static void Run()
    {
        var pairs = new (string Name, LanguageModelConfig Teacher, LanguageModelConfig Student)[]
        {
            ("InternVL2.5-78B -> InternVL2.5-8B (Qwen2.5-72B -> InternLM2.5-7B)", Text(151674, 8192, 29568, 80, 64, 8, true), Text(92553, 4096, 14336, 32, 32, 8, false)),
            ("Qwen2-VL-72B -> Qwen2-VL-7B", Text(152064, 8192, 29568, 80, 64, 8, true), Text(152064, 3584, 18944, 28, 28, 4, true)),
        };
        // equal steps per stage, as the paper's 9M / 9M / 6M examples are near equal, and one teacher pass over the stage-1/2 data
        var config = new TrainingConfig { Steps = new() { [1] = 1000, [2] = 1000, [3] = 1000 }, BatchSize = 1 };
        Console.WriteLine("matmul FLOPs of the language models per example (CostEstimate), relative to a student SFT step; steps 1000/1000/1000 against SFT for 2000; teacher pass over 1000 examples");
        foreach (var (name, teacher, student) in pairs)
        {
            Console.WriteLine($"{name}: Recalibrator {CostEstimate.RecalibratorParameterCount(teacher, student, 2) / 1e6:F0}M parameters");
            foreach (int answer in new[] { 20, 100, 300 })
                foreach (var (variant, c) in new[] { ("frozen in stage 2 (default)", config), ("joint + regularizer", config with { TrainRecalibratorInStage2 = true }) })
                {
                    // every answer token scored, as in single-turn data
                    var lengths = new[] { new ExampleLengths(7 * 256 + 30, answer, answer, 7 * 256 + 30, answer, answer) };
                    var e = CostEstimate.Of(teacher, student, c, lengths);
                    Console.WriteLine($"  answer {answer,3} tokens, {variant,-30}: stage 1 {e.Stage1 / e.Sft:F2}x, stage 2 {e.Stage2 / e.Sft:F2}x, teacher pass {e.TeacherPass / e.Sft:F2}x; " +
                                      $"arm {e.ArmRatio(c, 1000, TeacherWork.StoreReused):F2}x reusing the teacher-feature store, {e.ArmRatio(c, 1000, TeacherWork.StoreFilled):F2}x filling it, {e.ArmRatio(c, 1000, TeacherWork.Live):F2}x with the live teacher");
                }
        }
    }
}
