using GenRecal.Models;
using GenRecal.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

/// <summary>The additive attention mask is built in the activations' dtype (as transformers does), so bf16 scores stay
/// bf16 instead of being promoted to fp32 by an fp32 mask; the fp32 path is bit for bit what it was.</summary>
public class AttentionMaskDtypeTests
{
    /// <summary>The model's forward with the mask it used before the change: fp32 zeros, float.MinValue where blocked.</summary>
    static Tensor LogitsWithFp32Mask(CausalLanguageModel model, Tensor ids, Tensor? padding)
    {
        using var scope = NewDisposeScope();
        var c = model.TextConfig;
        long b = ids.shape[0], t = ids.shape[1];
        var x = model.Embed(ids);
        var positions = AttentionMask.Positions(b, t, 0, padding);
        var allowed = arange(t).view(1, t).le(arange(t).view(t, 1)).view(1, 1, t, t).expand(b, 1, t, t);
        if (padding is not null) allowed = allowed.logical_and(padding.to(ScalarType.Bool).view(b, 1, 1, t));
        var mask = zeros(b, 1, t, t).masked_fill(allowed.logical_not(), float.MinValue);
        var (cos, sin) = new RotaryEmbedding(c.HeadDim, c.RopeTheta).Compute(positions, x.dtype);
        var h = x;
        for (int i = 0; i < model.model.layers.Count; i++) h = model.model.layers[i].Forward(h, cos, sin, mask, null, i);
        return model.Head(model.model.norm.forward(h)).MoveToOuterDisposeScope();
    }

    [Fact]
    public void The_default_mask_is_the_fp32_one_it_was()
    {
        var padding = tensor(new long[] { 0, 1, 1, 1, 1, 1, 1, 1 }, 2, 4);
        var mask = AttentionMask.Causal(2, 4, 0, padding);
        Assert.Equal(ScalarType.Float32, mask.dtype);
        var explicitFp32 = AttentionMask.Causal(2, 4, 0, padding, dtype: ScalarType.Float32);
        Assert.True(mask.equal(explicitFp32).all().item<bool>());
        var values = mask.data<float>().ToArray();
        Assert.All(values, v => Assert.True(v == 0f || v == float.MinValue));
        // query 0 of row 0 sees only a padding key: every key blocked; query 3 of row 1 sees all four
        Assert.All(mask[0, 0, 0].data<float>().ToArray(), v => Assert.Equal(float.MinValue, v));
        Assert.All(mask[1, 0, 3].data<float>().ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_bf16_mask_is_bf16_with_bf16s_minimum()
    {
        var mask = AttentionMask.Causal(1, 3, 0, null, dtype: ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, mask.dtype);
        var f = mask.to(ScalarType.Float32).data<float>().ToArray();
        Assert.Equal(0f, f[0]);
        Assert.Equal((float)finfo(ScalarType.BFloat16).min, f[1]);
        Assert.True(float.IsFinite(f[1]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fp32_logits_are_bit_for_bit_those_of_the_fp32_mask_and_bf16_ones_unchanged_too(bool padded)
    {
        manual_seed(5);
        var model = new CausalLanguageModel(TestSupport.TinyText(vocab: 50, hidden: 64, heads: 4, kvHeads: 2));
        TestSupport.Randomize(model, 5, 0.1);
        model.eval();
        var ids = randint(0, 50, [2, 10]);
        Tensor? padding = padded ? cat([zeros(1, 10, ScalarType.Int64).index_fill_(1, arange(3, 10), 1), ones(1, 10, ScalarType.Int64)], 0) : null;
        using var noGrad = no_grad();
        var full = model.Logits(ids, padding);
        Assert.True(full.equal(LogitsWithFp32Mask(model, ids, padding)).all().item<bool>(), "fp32 logits changed");
        model.to(ScalarType.BFloat16);
        var half = model.Logits(ids, padding);
        Assert.Equal(ScalarType.BFloat16, half.dtype);
        // adding 0 in bf16 or in fp32 leaves a score as it is, and both minima give exp(...) = 0 after the fp32 softmax
        Assert.True(half.equal(LogitsWithFp32Mask(model, ids, padding)).all().item<bool>(), "bf16 logits changed");
    }
}
