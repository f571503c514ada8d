using GenRecal.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Evaluation;

/// <summary>Sampling settings: greedy when Temperature is 0.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 32;
    public double Temperature { get; init; }
    public double TopP { get; init; } = 1.0;
    public long Seed { get; init; } = 0;
    public IReadOnlyCollection<int> StopTokens { get; init; } = [];
    /// <summary>false recomputes the whole sequence every step (the reference the KV cache is tested against).</summary>
    public bool UseCache { get; init; } = true;
}

/// <summary>Autoregressive decoding for one prompt (ids and, for a VLM, its images) with a KV cache.</summary>
public static class TextGenerator
{
    /// <summary>Generated ids (stop token excluded) for <paramref name="promptIds"/>.</summary>
    public static List<int> Generate(CausalLanguageModel model, IReadOnlyList<int> promptIds, GenerationOptions options, ImageBatch? images = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var rng = new torch.Generator((ulong)options.Seed);
        var ids = promptIds.ToList();
        var output = new List<int>();
        using var cache = options.UseCache ? model.NewCache() : null;
        var prompt = tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0); // [1, T]
        var (embeds, positions) = Prompt(model, prompt, null, images);
        var next0 = NextPositions(positions);
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            using var stepScope = NewDisposeScope();
            var hidden = model.Body(embeds, positionIds: positions, cache: cache); // [1, T, hidden]
            var logits = model.Head(hidden[0, -1]).to(ScalarType.Float32); // [V]
            int next = Pick(logits, options, rng);
            if (options.StopTokens.Contains(next)) break;
            output.Add(next);
            var nextEmbed = model.Embed(tensor(new long[] { next }).unsqueeze(0)); // [1, 1, hidden]
            embeds = options.UseCache ? nextEmbed : cat([embeds, nextEmbed], 1);
            embeds.MoveToOuterDisposeScope();
            if (next0 is not null)
            {
                var p = (next0 + step).view(1, 1, 1).expand(3, 1, 1);                  // [3, 1, 1]
                positions = (options.UseCache ? p : cat([positions!, p], 2)).MoveToOuterDisposeScope();
            }
        }
        return output;
    }

    /// <summary>The prompt's input embeddings and, for a family with its own position numbering (M-RoPE), its positions.</summary>
    static (Tensor Embeds, Tensor? Positions) Prompt(CausalLanguageModel model, Tensor ids, Tensor? mask, ImageBatch? images) =>
        (model.EmbedInputs(ids, images?.Pixels, images?.Grids), model.PositionIds(ids, mask, images?.Grids));

    /// <summary>Per row, the position the first generated token takes after the prompt's [3, B, T] positions: one past
    /// the largest (transformers' rope_deltas), the same on every axis.</summary>
    static Tensor? NextPositions(Tensor? positions) => positions is null ? null : positions.amax([0, 2]) + 1; // [B]

    static int Pick(Tensor logits, GenerationOptions o, torch.Generator rng)
    {
        if (o.Temperature <= 0) return (int)logits.argmax().item<long>();
        var probs = (logits / o.Temperature).softmax(-1);
        if (o.TopP < 1.0)
        {
            // nucleus: keep the smallest prefix of sorted probabilities whose mass reaches top_p
            var (sorted, order) = probs.sort(descending: true);
            var before = sorted.cumsum(0) - sorted;
            sorted = sorted.masked_fill(before.ge(o.TopP), 0);
            probs = zeros_like(probs).scatter(0, order, sorted);
            probs /= probs.sum();
        }
        return (int)multinomial(probs, 1, generator: rng).item<long>();
    }

    /// <summary>
    /// Greedy decoding of several prompts at once: prompts are left-padded (positions follow the padding mask,
    /// as in transformers' generate), each row stops at its own stop token. Returns the generated ids per row.
    /// </summary>
    public static List<List<int>> GenerateGreedyBatch(CausalLanguageModel model, IReadOnlyList<IReadOnlyList<int>> prompts, int maxNewTokens,
                                                      IReadOnlyCollection<int> stopTokens, int padId, ImageBatch? images = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int b = prompts.Count, t = prompts.Max(p => p.Count);
        var ids = new long[b * t];
        var mask = new long[b * t];
        for (int i = 0; i < b; i++)
        {
            int pad = t - prompts[i].Count;
            for (int j = 0; j < t; j++)
            {
                ids[i * t + j] = j < pad ? padId : prompts[i][j - pad];
                mask[i * t + j] = j < pad ? 0 : 1;
            }
        }
        var idTensor = tensor(ids).reshape(b, t);                 // [B, T] left-padded
        var maskTensor = tensor(mask).reshape(b, t);              // [B, T]
        var (embeds, positions) = Prompt(model, idTensor, maskTensor, images);
        var next0 = NextPositions(positions);
        using var cache = model.NewCache();
        var outputs = Enumerable.Range(0, b).Select(_ => new List<int>()).ToList();
        var done = new bool[b];
        for (int step = 0; step < maxNewTokens && done.Any(d => !d); step++)
        {
            using var stepScope = NewDisposeScope();
            var hidden = model.Body(embeds, maskTensor, positions, cache: cache);        // [B, T, hidden]
            var next = model.Head(hidden[.., -1]).argmax(-1).data<long>().ToArray();     // [B]
            for (int i = 0; i < b; i++)
            {
                if (done[i]) continue;
                if (stopTokens.Contains((int)next[i])) done[i] = true;
                else outputs[i].Add((int)next[i]);
            }
            embeds = model.Embed(tensor(next).unsqueeze(1)).MoveToOuterDisposeScope();       // [B, 1, hidden]
            maskTensor = cat([maskTensor, ones(b, 1, ScalarType.Int64)], 1).MoveToOuterDisposeScope(); // [B, S+1]
            if (next0 is not null) positions = (next0 + step).view(1, b, 1).expand(3, b, 1).MoveToOuterDisposeScope(); // [3, B, 1]
        }
        return outputs;
    }
}
