using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Training;

/// <summary>A tiny text-only teacher/student pair on disk, with different tokenizers, widths and depths, and a data file.</summary>
internal static class TinyPair
{
    public static readonly (string Q, string A)[] Conversations =
    [
        ("What colour is the sky?", "blue"), ("What colour is grass?", "green"), ("How many legs has a cat?", "4"),
        ("How many days in a week?", "7"), ("Which is bigger, 3 or 8?", "8"), ("What is 2 plus 3?", "5"),
        ("Name a red fruit.", "apple"), ("What shape is a ball?", "round"),
    ];

    public static string WriteData(string dir, int copies = 1)
    {
        var path = Path.Combine(dir, "data.jsonl");
        var lines = Enumerable.Range(0, copies).SelectMany(c => Conversations.Select((qa, i) => new JsonObject
        {
            ["id"] = $"ex{c}-{i}",
            ["conversations"] = new JsonArray(
                new JsonObject { ["from"] = "human", ["value"] = qa.Q },
                new JsonObject { ["from"] = "gpt", ["value"] = qa.A }),
        }));
        LlavaDataset.Write(path, lines);
        return path;
    }

    /// <summary>Rewrites a saved model's weights as BF16, as released checkpoints store them.</summary>
    public static void StoreAsBf16(string modelDir)
    {
        var file = Path.Combine(modelDir, Pretrained.WeightsFileName);
        var weights = GenRecal.Tensors.Safetensors.Load(file).ToDictionary(kv => kv.Key, kv => kv.Value.to(TorchSharp.torch.ScalarType.BFloat16));
        GenRecal.Tensors.Safetensors.Save(file, weights, new Dictionary<string, string> { ["format"] = "pt" });
    }

    static IEnumerable<string> Corpus => Conversations.SelectMany(c => new[] { c.Q, c.A, "\n" });

    /// <param name="scale">spread of the random weights: 0.05 gives near-uniform logits, larger a teacher with opinions</param>
    public static string Teacher(string root, string encoding = "o200k_base", long seed = 1, double scale = 0.05)
    {
        var tok = ModelTokenizer.Build(encoding, Corpus, ChatTemplate.ChatML);
        var text = TestSupport.TinyText(vocab: tok.VocabSize, hidden: 32, layers: 2, heads: 4, kvHeads: 2);
        return Save(Path.Combine(root, "teacher"), new ModelConfig(text, null, null), tok, seed, scale);
    }

    public static string Student(string root, string encoding = "gpt2", long seed = 2)
    {
        var tok = ModelTokenizer.BuildCompact(encoding, Corpus, ChatTemplate.Llama3);
        var text = TestSupport.TinyText(vocab: tok.VocabSize, hidden: 16, layers: 1, heads: 2, kvHeads: 1);
        return Save(Path.Combine(root, "student"), new ModelConfig(text, null, null), tok, seed);
    }

    /// <summary>The student's sizes with the teacher's tokenizer (same vocabulary and template): the token-level KD pair.</summary>
    public static string StudentWithTokenizerOf(string root, string teacherDir, long seed = 2)
    {
        var tok = ModelTokenizer.Load(teacherDir);
        var text = TestSupport.TinyText(vocab: tok.VocabSize, hidden: 16, layers: 1, heads: 2, kvHeads: 1);
        return Save(Path.Combine(root, "student-same-tokenizer"), new ModelConfig(text, null, null), tok, seed);
    }

    static readonly Lazy<string> TrainedTeacherCache = new(() =>
    {
        // A teacher that knows the answers: SFT on the data (the test pair's "large model").
        var root = TestSupport.TempDir();
        Teacher(root);
        var data = WriteData(root);
        new GenRecal.Training.DistillationRecipe(new GenRecal.Training.DistillationPlan
        {
            StudentDir = Path.Combine(root, "teacher"), DataPath = data, OutDir = Path.Combine(root, "sft"),
            Stages = [GenRecal.Training.Stage.Sft],
            Config = new GenRecal.Training.TrainingConfig { Steps = new() { [3] = 80 }, BatchSize = 8, LrStart = 5e-3, LrEnd = 1e-3, CheckpointEvery = 0 },
        }).Run();
        return Path.Combine(root, "sft", "student");
    });

    /// <summary>Copies a teacher SFT-trained on the data (trained once per test run) to root/teacher.</summary>
    public static string TrainedTeacher(string root)
    {
        var dir = Path.Combine(root, "teacher");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(TrainedTeacherCache.Value)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
        return dir;
    }

    static string Save(string dir, ModelConfig config, ModelTokenizer tok, long seed, double scale = 0.05)
    {
        var model = Pretrained.Create(config);
        TestSupport.Randomize(model, seed, scale);
        Pretrained.Save(model, config, tok, dir);
        return dir;
    }
}
