using GenRecal.Models;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Data;

/// <summary>
/// Turns examples into one model's batch: that model's tokenizer, chat template, image size and number of
/// image tokens. Teacher and student each get their own collator, so neither sees the other's ids. Each example
/// is tokenized and each image decoded once per collator (epochs revisit them); Dispose frees the images.
/// </summary>
public sealed class Collator(CausalLanguageModel model, ModelTokenizer tokenizer, int maxLength) : IDisposable
{
    readonly Dictionary<string, ImageInput> imageCache = new();
    readonly Dictionary<ConversationExample, EncodedChat> encodedCache = new(ReferenceEqualityComparer.Instance);
    VisionLanguageModel? Vlm => model as VisionLanguageModel;
    public ModelTokenizer Tokenizer => tokenizer;
    public int MaxLength => maxLength;

    public EncodedChat Encode(ConversationExample ex)
    {
        if (encodedCache.TryGetValue(ex, out var e)) return e;
        int imageTokens = ex.ImagePath is null ? 0 : Vlm?.ImageTokens(Image(ex.ImagePath))
            ?? throw new ArgumentException($"example '{ex.Id}' has an image but the model has no vision encoder");
        return encodedCache[ex] = ChatEncoder.EncodeConversation(tokenizer, ex.Turns, imageTokens);
    }

    public void Dispose()
    {
        foreach (var t in imageCache.Values) t.Values.Dispose();
        imageCache.Clear();
        encodedCache.Clear();
    }

    /// <summary>Why this model cannot train on <paramref name="ex"/>, or null; checked for every line before step 1 so a
    /// bad line is reported at the start, not at the batch that holds it.</summary>
    public string? Problem(ConversationExample ex)
    {
        if (ex.ImagePath is not null && Vlm is null) return "has an image but the model has no vision encoder";
        var e = Encode(ex);
        if (e.Ids.FirstOrDefault(id => id >= model.TextConfig.VocabSize, -1) is var outside and >= 0)
            return $"uses token '{tokenizer.TokenText(outside)}' (id {outside}), which the model's embedding (vocab_size {model.TextConfig.VocabSize}) does not have";
        return e.FirstAnswerStart >= maxLength ? CutOff(e) : null;
    }

    string CutOff(EncodedChat e) => $"the answer is cut off by the maximum length {maxLength} ({e.Ids.Length} tokens)";

    public ModelBatch Collate(IReadOnlyList<ConversationExample> examples)
    {
        var encoded = examples.Select(Encode).ToList();
        int b = examples.Count;
        var lengths = encoded.Select(e => Math.Min(e.Ids.Length, maxLength)).ToArray();
        int t = lengths.Max();
        var ids = new long[b * t];
        var mask = new long[b * t];
        var labels = Enumerable.Repeat((long)EncodedChat.IgnoreIndex, b * t).ToArray();
        for (int i = 0; i < b; i++)
        {
            var e = encoded[i];
            if (e.FirstAnswerStart >= lengths[i])
                throw new InvalidDataException($"example '{examples[i].Id}' (line {examples[i].LineNumber}): {CutOff(e)}");
            for (int j = 0; j < lengths[i]; j++)
            {
                ids[i * t + j] = e.Ids[j];
                mask[i * t + j] = 1;
                labels[i * t + j] = e.Labels[j];
            }
            for (int j = lengths[i]; j < t; j++) ids[i * t + j] = tokenizer.PadId;
        }
        var images = Vlm is null ? null : ImageBatch.Of(examples.Where(e => e.ImagePath is not null).Select(e => Image(e.ImagePath!)).ToList());
        return new ModelBatch
        {
            InputIds = tensor(ids).reshape(b, t),
            AttentionMask = tensor(mask).reshape(b, t),
            Labels = tensor(labels).reshape(b, t),
            Pixels = images?.Pixels,
            Grids = images?.Grids,
            AnswerStart = encoded.Select(e => e.FirstAnswerStart).ToArray(),
            Lengths = lengths,
        };
    }

    /// <summary>The image as this model's family preprocesses it, [tiles, C, H, W], decoded once.</summary>
    ImageInput Image(string path)
    {
        if (!imageCache.TryGetValue(path, out var t))
        {
            t = Vlm!.LoadImage(path);
            t.Values.DetachFromDisposeScope();
            imageCache[path] = t;
        }
        return t;
    }
}
