using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Runtime;
using GenRecal.Tokenization;

namespace GenRecal.Evaluation;

/// <summary>One scored question: what the model answered and whether it was right.</summary>
public sealed record EvaluatedItem(string Id, string? Family, string Prediction, bool Correct);

/// <summary>Accuracy overall and per question family, with each question's prediction (for paired comparisons).</summary>
public sealed record EvaluationResult(string Model, int Correct, int Total, Dictionary<string, (int Correct, int Total)> Families)
{
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
    public IReadOnlyList<EvaluatedItem> Items { get; init; } = [];

    /// <summary>95 % Wilson interval of the accuracy.</summary>
    public (double Low, double High) Interval => Statistics.WilsonInterval(Correct, Total);

    public JsonObject ToJson() => new()
    {
        ["model"] = Model, ["accuracy"] = Math.Round(Accuracy, 4),
        ["accuracy_ci95"] = new JsonArray(Math.Round(Interval.Low, 4), Math.Round(Interval.High, 4)), ["correct"] = Correct, ["total"] = Total,
        ["families"] = new JsonObject(Families.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
        {
            ["accuracy"] = Math.Round(kv.Value.Total == 0 ? 0 : (double)kv.Value.Correct / kv.Value.Total, 4), ["correct"] = kv.Value.Correct, ["total"] = kv.Value.Total,
        }))),
        ["items"] = new JsonArray(Items.Select(i => (JsonNode)new JsonObject
        {
            ["id"] = i.Id, ["family"] = i.Family, ["prediction"] = i.Prediction, ["correct"] = i.Correct,
        }).ToArray()),
    };

    /// <summary>Reads what <see cref="ToJson"/> wrote (the demo's results.json, eval --out).</summary>
    public static EvaluationResult FromJson(JsonObject o) =>
        new(o["model"]!.GetValue<string>(), o["correct"]!.GetValue<int>(), o["total"]!.GetValue<int>(),
            (o["families"] as JsonObject ?? []).ToDictionary(kv => kv.Key, kv => (kv.Value!["correct"]!.GetValue<int>(), kv.Value!["total"]!.GetValue<int>())))
        {
            Items = (o["items"] as JsonArray ?? []).Select(n => new EvaluatedItem(n!["id"]!.GetValue<string>(), n["family"]?.GetValue<string>(),
                n["prediction"]!.GetValue<string>(), n["correct"]!.GetValue<bool>())).ToList(),
        };
}

/// <summary>The model alone answers every question greedily (its own tokenizer, template, image size); answers are scored.</summary>
public static class Evaluator
{
    /// <summary>Evaluates in batches of <paramref name="batchSize"/> (batched greedy decoding with left padding).</summary>
    public static EvaluationResult Run(PretrainedModel model, IReadOnlyList<ConversationExample> examples, int maxNewTokens = 16,
                                       IProgress<int>? progress = null, int batchSize = 16)
    {
        int correct = 0, done = 0;
        var families = new Dictionary<string, (int, int)>();
        var items = new List<EvaluatedItem>(examples.Count);
        using var noGc = new NoGcRegion();
        foreach (var chunk in examples.Chunk(batchSize))
        {
            noGc.Boundary();
            var predictions = AnswerBatch(model, chunk, maxNewTokens);
            for (int i = 0; i < chunk.Length; i++)
            {
                bool ok = AnswerScorer.IsCorrect(predictions[i], chunk[i].Answer);
                var family = chunk[i].Family ?? "all";
                var (c, t) = families.GetValueOrDefault(family);
                families[family] = (c + (ok ? 1 : 0), t + 1);
                if (ok) correct++;
                items.Add(new EvaluatedItem(chunk[i].Id, family, predictions[i], ok));
            }
            done += chunk.Length;
            progress?.Report(done);
        }
        return new EvaluationResult(Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory)), correct, examples.Count, families) { Items = items };
    }

    /// <summary>Greedy answers for several examples in one batch, each in the model's own format.</summary>
    public static List<string> AnswerBatch(PretrainedModel model, IReadOnlyList<ConversationExample> examples, int maxNewTokens)
    {
        var tok = model.Tokenizer;
        var prompts = new List<IReadOnlyList<int>>();
        var images = new List<ImageInput>();
        foreach (var ex in examples)
        {
            int imageTokens = 0;
            if (ex.ImagePath is not null)
            {
                var vlm = model.Vlm ?? throw new ArgumentException($"example '{ex.Id}' has an image but {model.Directory} has no vision encoder");
                var image = vlm.LoadImage(ex.ImagePath);
                images.Add(image);
                imageTokens = vlm.ImageTokens(image);
            }
            prompts.Add(ChatEncoder.EncodePrompt(tok, ex.Question, imageTokens));
        }
        using var batch = ImageBatch.Of(images);
        var outputs = TextGenerator.GenerateGreedyBatch(model.Model, prompts, maxNewTokens, [tok.EndOfTurnId, tok.PadId], tok.PadId, batch);
        foreach (var img in images) img.Values.Dispose();
        return outputs.Select(o => tok.Decode(o, skipSpecial: true)).ToList();
    }
}
