using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tokenization;

namespace GenRecal.Evaluation;

/// <summary>
/// Prompt lengths for generation: a prompt (plus what is generated) must fit the model's max_position_embeddings,
/// and is refused before any work starts, naming the line, rather than run far past what the model was built for.
/// </summary>
public static class PromptLimits
{
    /// <summary>Throws when the prompt and <paramref name="maxNewTokens"/> do not fit the model's positions.</summary>
    public static void Check(PretrainedModel model, int promptTokens, int maxNewTokens, string what) =>
        Check(model, promptTokens, maxNewTokens, what, []);

    /// <summary>Also refuses a prompt with a token past the model's embedding (an added token the checkpoint has no row for).</summary>
    public static void Check(PretrainedModel model, int promptTokens, int maxNewTokens, string what, IReadOnlyList<int> ids)
    {
        int vocab = model.Config.Text.VocabSize;
        if (ids.FirstOrDefault(id => id >= vocab, -1) is var outside and >= 0)
            throw new ArgumentException($"{what}: token '{model.Tokenizer.TokenText(outside)}' (id {outside}) is past the model's embedding (vocab_size {vocab} in {Path.Combine(model.Directory, ModelConfig.FileName)})");
        int limit = model.Config.Text.MaxPositionEmbeddings;
        if (promptTokens + maxNewTokens > limit)
            throw new ArgumentException($"{what}: the prompt has {promptTokens} tokens and up to {maxNewTokens} are generated, " +
                $"more than the model's max_position_embeddings {limit} ({Path.Combine(model.Directory, ModelConfig.FileName)})");
    }

    /// <summary>Checks every example's question as evaluation encodes it; one error lists every line too long.</summary>
    public static void CheckAll(PretrainedModel model, IReadOnlyList<ConversationExample> examples, int maxNewTokens, string dataPath)
    {
        int limit = model.Config.Text.MaxPositionEmbeddings;
        var tooLong = new List<string>();
        foreach (var ex in examples)
        {
            int imageTokens = ex.ImagePath is not null && model.Vlm is { } vlm ? vlm.ImageTokensFor(ex.ImagePath) : 0;
            int n = ChatEncoder.EncodePrompt(model.Tokenizer, ex.Question, imageTokens).Length;
            if (n + maxNewTokens > limit) tooLong.Add($"line {ex.LineNumber}: {n} prompt tokens");
        }
        if (tooLong.Count > 0)
            throw new InvalidDataException($"{dataPath}: {tooLong.Count} prompt(s) do not fit the model's max_position_embeddings {limit} " +
                $"with {maxNewTokens} generated tokens: {string.Join("; ", tooLong)}");
    }
}
