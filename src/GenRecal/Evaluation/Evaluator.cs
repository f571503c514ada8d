using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tokenization;

namespace GenRecal.Evaluation;

/// <summary>Accuracy overall and per question family.</summary>
public sealed record EvaluationResult(string Model, int Correct, int Total, Dictionary<string, (int Correct, int Total)> Families)
{
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;

    public JsonObject ToJson() => new()
    {
        ["model"] = Model, ["accuracy"] = Math.Round(Accuracy, 4), ["correct"] = Correct, ["total"] = Total,
        ["families"] = new JsonObject(Families.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
        {
            ["accuracy"] = Math.Round(kv.Value.Total == 0 ? 0 : (double)kv.Value.Correct / kv.Value.Total, 4), ["correct"] = kv.Value.Correct, ["total"] = kv.Value.Total,
        }))),
    };
}

/// <summary>The model alone answers every question greedily (its own tokenizer, template, image size); answers are scored.</summary>
public static class Evaluator
{
    public static EvaluationResult Run(PretrainedModel model, IReadOnlyList<ConversationExample> examples, int maxNewTokens = 16, IProgress<int>? progress = null)
    {
        int correct = 0, done = 0;
        var families = new Dictionary<string, (int, int)>();
        foreach (var ex in examples)
        {
            var prediction = Answer(model, ex, maxNewTokens);
            bool ok = AnswerScorer.IsCorrect(prediction, ex.Answer);
            var family = ex.Family ?? "all";
            var (c, t) = families.GetValueOrDefault(family);
            families[family] = (c + (ok ? 1 : 0), t + 1);
            if (ok) correct++;
            progress?.Report(++done);
        }
        return new EvaluationResult(Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory)), correct, examples.Count, families);
    }

    public static string Answer(PretrainedModel model, ConversationExample ex, int maxNewTokens)
    {
        var tok = model.Tokenizer;
        TorchSharp.torch.Tensor? pixels = null;
        int imageTokens = 0;
        if (ex.ImagePath is not null)
        {
            var vlm = model.Vlm ?? throw new ArgumentException($"example '{ex.Id}' has an image but {model.Directory} has no vision encoder");
            pixels = ImagePreprocessor.Load(ex.ImagePath, vlm.Vision).unsqueeze(0);
            imageTokens = vlm.NumImageTokens;
        }
        var ids = ChatEncoder.EncodePrompt(tok, ex.Question, imageTokens);
        var output = TextGenerator.Generate(model.Model, ids, new GenerationOptions { MaxNewTokens = maxNewTokens, StopTokens = [tok.EndOfTurnId, tok.PadId] }, pixels);
        pixels?.Dispose();
        return tok.Decode(output, skipSpecial: true);
    }
}
