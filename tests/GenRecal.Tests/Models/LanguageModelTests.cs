using TorchSharp;
using GenRecal.Evaluation;
using GenRecal.Models;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

public class LanguageModelTests
{
    static CausalLanguageModel Tiny(bool tie = false, bool bias = true, int kvHeads = 2, long seed = 7)
    {
        var m = new CausalLanguageModel(TestSupport.TinyText(tie: tie, bias: bias, kvHeads: kvHeads));
        TestSupport.Randomize(m, seed);
        m.eval();
        return m;
    }

    [Theory]
    [InlineData(false, true, 2)]
    [InlineData(true, false, 4)]
    [InlineData(false, true, 1)]
    public void Forward_matches_a_naive_loop_implementation(bool tie, bool bias, int kvHeads)
    {
        var model = Tiny(tie, bias, kvHeads);
        int[] ids = [3, 17, 42, 5, 63, 0, 9];
        using var noGrad = no_grad();
        var logits = model.Logits(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0))[0];
        var naive = new NaiveLanguageModel(model.TextConfig, Pretrained.StateDict(model)).Logits(ids);
        var expected = tensor(naive.SelectMany(r => r).ToArray()).reshape(ids.Length, -1);
        Assert.True(TestSupport.MaxAbsDiff(logits, expected) < 1e-5);
    }

    [Fact]
    public void Changing_a_later_token_never_changes_earlier_logits()
    {
        var model = Tiny();
        using var noGrad = no_grad();
        var a = model.Logits(tensor(new long[] { 1, 2, 3, 4, 5, 6 }).unsqueeze(0));
        var b = model.Logits(tensor(new long[] { 1, 2, 3, 40, 50, 60 }).unsqueeze(0));
        Assert.Equal(0, TestSupport.MaxAbsDiff(a[.., ..3], b[.., ..3]), 6);
        Assert.True(TestSupport.MaxAbsDiff(a[.., 3..], b[.., 3..]) > 1e-3); // the change is visible after it
    }

    [Fact]
    public void Padding_in_a_batch_does_not_change_the_unpadded_rows()
    {
        var model = Tiny();
        using var noGrad = no_grad();
        long[] shortSeq = [5, 6, 7], longSeq = [1, 2, 3, 4, 5, 6];
        var aloneShort = model.Logits(tensor(shortSeq).unsqueeze(0))[0];
        var aloneLong = model.Logits(tensor(longSeq).unsqueeze(0))[0];
        // right padding and left padding of the short row, in a batch with the long row
        foreach (bool left in new[] { false, true })
        {
            long[] padded = left ? [0, 0, 0, .. shortSeq] : [.. shortSeq, 0, 0, 0];
            long[] maskRow = left ? [0, 0, 0, 1, 1, 1] : [1, 1, 1, 0, 0, 0];
            var ids = stack([tensor(padded), tensor(longSeq)]);
            var mask = stack([tensor(maskRow), ones(6, ScalarType.Int64)]);
            var logits = model.Logits(ids, mask);
            var realRows = left ? logits[0, 3..] : logits[0, ..3];
            Assert.True(TestSupport.MaxAbsDiff(realRows, aloneShort) < 1e-5);
            Assert.True(TestSupport.MaxAbsDiff(logits[1], aloneLong) < 1e-5);
        }
    }

    [Fact]
    public void Generation_with_kv_cache_equals_recomputing_the_full_sequence()
    {
        var model = Tiny(seed: 11);
        int[] prompt = [4, 8, 15, 16, 23];
        var withCache = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 12 });
        var without = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 12, UseCache = false });
        Assert.Equal(12, withCache.Count);
        Assert.Equal(without, withCache);
        var sampledA = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.9, Seed = 3 });
        var sampledB = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.9, Seed = 3, UseCache = false });
        Assert.Equal(sampledA, sampledB);
    }

    [Fact]
    public void Generation_stops_at_a_stop_token()
    {
        var model = Tiny(seed: 11);
        int[] prompt = [4, 8, 15];
        var free = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 10 });
        var stopped = TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 10, StopTokens = [free[3]] });
        Assert.Equal(free.TakeWhile(t => t != free[3]), stopped);
    }

    [Fact]
    public void Top_p_keeps_only_the_nucleus()
    {
        var model = Tiny(seed: 5);
        int[] prompt = [1, 2, 3];
        using var noGrad = no_grad();
        var probs = model.Logits(tensor(new long[] { 1, 2, 3 }).unsqueeze(0))[0, -1].softmax(-1);
        int top = (int)probs.argmax().item<long>();
        double pTop = probs[top].item<float>();
        // with top_p below the largest probability only the arg-max survives, whatever the seed
        for (int seed = 0; seed < 10; seed++)
            Assert.Equal(top, TextGenerator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 1, Temperature = 1, TopP = pTop * 0.99, Seed = seed })[0]);
    }
}

public class BatchedGenerationTests
{
    [Fact]
    public void Batched_greedy_decoding_equals_one_prompt_at_a_time()
    {
        var model = new CausalLanguageModel(TestSupport.TinyText());
        TestSupport.Randomize(model, 21);
        model.eval();
        int[][] prompts = [[4, 8, 15], [16, 23, 42, 7, 1, 9], [5]];
        int stop = TextGenerator.Generate(model, prompts[1], new GenerationOptions { MaxNewTokens = 10 })[2]; // makes row 1 stop early
        var batch = TextGenerator.GenerateGreedyBatch(model, prompts, 10, [stop], padId: 0);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(TextGenerator.Generate(model, prompts[i], new GenerationOptions { MaxNewTokens = 10, StopTokens = [stop] }), batch[i]);
        Assert.True(batch[1].Count < 10);
    }

    [Fact]
    public void Batched_vlm_answers_equal_single_ones()
    {
        var (model, config, tok) = PretrainedTests.TinyVlm(seed: 4);
        model.eval();
        manual_seed(9);
        var pixels = randn(2, 3, 16, 16);
        var p0 = GenRecal.Tokenization.ChatEncoder.EncodePrompt(tok, "<image>\nWhat colour is the circle?", model.TokensPerTile);
        var p1 = GenRecal.Tokenization.ChatEncoder.EncodePrompt(tok, "<image>\nHow many?", model.TokensPerTile);
        var batch = TextGenerator.GenerateGreedyBatch(model, [p0, p1], 6, [], tok.PadId, new ImageBatch(pixels, null));
        Assert.Equal(TextGenerator.Generate(model, p0, new GenerationOptions { MaxNewTokens = 6 }, new ImageBatch(pixels[0..1], null)), batch[0]);
        Assert.Equal(TextGenerator.Generate(model, p1, new GenerationOptions { MaxNewTokens = 6 }, new ImageBatch(pixels[1..2], null)), batch[1]);
    }

    [Fact]
    public void A_model_cast_to_bf16_runs_and_its_logits_stay_within_bf16_precision()
    {
        manual_seed(3);
        var model = new CausalLanguageModel(TestSupport.TinyText(vocab: 50, hidden: 64, heads: 4, kvHeads: 2));
        TestSupport.Randomize(model, 3, 0.1);
        model.eval();
        var ids = randint(0, 50, [2, 12]);
        using var noGrad = no_grad();
        var full = model.Logits(ids);
        model.to(ScalarType.BFloat16);
        var half = model.Logits(ids);
        Assert.Equal(ScalarType.BFloat16, half.dtype);
        // bf16 keeps 8 significant bits: relative error about 2^-8 per rounding, a few roundings deep
        double scale = full.abs().max().item<float>();
        double diff = (half.to(ScalarType.Float32) - full).abs().max().item<float>();
        Assert.True(diff < 0.05 * scale, $"max |bf16 − fp32| {diff:g3} against logits up to {scale:g3}");
        Assert.True(diff > 0, "the cast changed nothing: the model did not run in bf16");
    }
}
