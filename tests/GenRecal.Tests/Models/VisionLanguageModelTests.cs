using GenRecal.Models;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

public class VisionLanguageModelTests
{
    [Fact]
    public void Pixel_shuffle_matches_a_naive_block_gather()
    {
        manual_seed(2);
        int s = 4, k = 2, d = 3;
        var x = randn(2, s * s, d);
        var y = VisionProjector.PixelShuffle(x, k);
        Assert.Equal(new long[] { 2, 4, d * k * k }, y.shape);
        // InternVL's layout, written as index arithmetic: x viewed [N, w, h, D] (row = w index);
        // output token (i, j) over the (w/k, h/k) grid gathers channels in order (dw, dh, D)
        var xv = x.reshape(2, s, s, d);
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < s / k; i++)
                for (int j = 0; j < s / k; j++)
                    for (int dh = 0; dh < k; dh++)
                        for (int dw = 0; dw < k; dw++)
                            for (int c = 0; c < d; c++)
                            {
                                float expected = xv[n, i * k + dw, j * k + dh, c].item<float>();
                                float actual = y[n, i * (s / k) + j, (dw * k + dh) * d + c].item<float>();
                                Assert.Equal(expected, actual);
                            }
    }

    [Theory]
    [InlineData(16, 4, 0.5, 4)]
    [InlineData(16, 4, 1.0, 16)]
    [InlineData(24, 4, 0.5, 9)]
    public void Image_token_count_follows_size_patch_and_downsampling(int size, int patch, double ratio, int expected)
    {
        var v = TestSupport.TinyVision(size, patch, ratio);
        Assert.Equal(expected, v.NumImageTokens);
        var m = new InternVisionLanguageModel(new ModelConfig(TestSupport.TinyText(), v, 5));
        using var noGrad = no_grad();
        Assert.Equal(new long[] { 2, expected, 32 }, m.EncodeImages(randn(2, 3, size, size)).shape);
    }

    [Fact]
    public void Image_placeholders_take_the_projected_features_and_text_positions_keep_embeddings()
    {
        var (model, _, tok) = PretrainedTests.TinyVlm();
        using var noGrad = no_grad();
        int img = model.ImageTokenId, n = model.TokensPerTile;
        long[] ids = [1, .. Enumerable.Repeat((long)img, n), 2, 3];
        var pixels = randn(1, 3, 16, 16);
        var embeds = model.EmbedMultimodal(tensor(ids).unsqueeze(0), pixels)[0];
        var features = model.EncodeImages(pixels)[0];
        Assert.Equal(0, TestSupport.MaxAbsDiff(embeds[1..(1 + n)], features), 6);
        Assert.Equal(0, TestSupport.MaxAbsDiff(embeds[0], model.Embed(tensor(new long[] { 1 }))[0]), 6);
        // the image changes the logits of the text after it
        var other = model.Head(model.Body(model.EmbedMultimodal(tensor(ids).unsqueeze(0), randn(1, 3, 16, 16))));
        var logits = model.Head(model.Body(embeds.unsqueeze(0)));
        Assert.True(TestSupport.MaxAbsDiff(logits[0, -1], other[0, -1]) > 1e-4);
    }

    [Fact]
    public void A_wrong_number_of_image_tokens_is_a_clear_error()
    {
        var (model, _, _) = PretrainedTests.TinyVlm();
        var ids = tensor(new long[] { 1, model.ImageTokenId, 2 }).unsqueeze(0);
        var e = Assert.Throws<ArgumentException>(() => model.EmbedMultimodal(ids, randn(1, 3, 16, 16)));
        Assert.Contains("1 image token positions", e.Message);
    }
}

public class ModelComponentTests
{
    [Fact]
    public void Every_parameter_belongs_to_one_component_and_freezing_by_component_is_exact()
    {
        var (model, _, _) = PretrainedTests.TinyVlm();
        var names = model.named_parameters().Select(p => p.name).ToList();
        Assert.All(names, n => ModelComponents.Of(n));
        Assert.Equal(Enum.GetValues<ModelComponent>().Order(), names.Select(ModelComponents.Of).Distinct().Order());
        model.SetTrainable(Enum.GetValues<ModelComponent>().ToHashSet(), trainable: false);
        var touched = model.SetTrainable(new HashSet<ModelComponent> { ModelComponent.Projector });
        Assert.Equal(names.Where(n => n.StartsWith("mlp1.")), model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name));
        Assert.Equal(touched.Count, names.Count(n => n.StartsWith("mlp1.")));
    }
}
