using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>One image's size in encoder patches (temporal, height, width), for families whose encoder takes a patch
/// sequence of any shape (Qwen2-VL) rather than fixed-size tiles.</summary>
public readonly record struct ImageGrid(int T, int H, int W);

/// <summary>An image as its family's processor makes it: the pixel values (tiles [N, C, S, S], or a patch sequence
/// [P, C·t·p·p]) and, for a patch sequence, its grid.</summary>
public sealed record ImageInput(Tensor Values, ImageGrid? Grid);

/// <summary>The images of a batch, concatenated in reading order: pixel values and, for patch sequences, each grid.</summary>
public sealed record ImageBatch(Tensor Pixels, IReadOnlyList<ImageGrid>? Grids) : IDisposable
{
    public static ImageBatch? Of(IReadOnlyList<ImageInput> images) => images.Count == 0 ? null
        : new(cat(images.Select(i => i.Values).ToArray(), 0),
              images.All(i => i.Grid is not null) ? images.Select(i => i.Grid!.Value).ToList() : null);

    public void Dispose() => Pixels.Dispose();
}

/// <summary>
/// vision encoder → projector → VLM-body → VLM-head. The text model keeps HF's text-only names (model.*, lm_head.*)
/// and the vision parts sit beside it (vision_model.* for the encoder, mlp1.* for the projector), whatever names the
/// family's checkpoint uses. Image-context ids in the input are replaced, in order, by projected image features.
/// </summary>
public abstract class VisionLanguageModel : CausalLanguageModel
{
    protected VisionLanguageModel(ModelConfig config, string name) : base(config.Text, name)
    {
        Config = config;
    }

    public ModelConfig Config { get; }
    public int ImageTokenId => Config.ImageTokenId!.Value;

    /// <summary>An image file as this model's family preprocesses it.</summary>
    public ImageInput LoadImage(string path) => Config.Family.LoadImage(path, Config);

    /// <summary>Image-context tokens a preprocessed image takes.</summary>
    public abstract int ImageTokens(ImageInput image);

    /// <summary>Image tokens an image file takes, from its header's size alone (no pixels decoded).</summary>
    public int ImageTokensFor(string path)
    {
        var (w, h) = Data.ImagePreprocessor.Size(path);
        return Config.Family.ImageTokens(w, h, Config);
    }

    /// <summary>Projected features of every image, in order, one row per image-context token: [N, hidden].</summary>
    public abstract Tensor ImageFeatures(Tensor pixels, IReadOnlyList<ImageGrid>? grids);

    public override Tensor EmbedInputs(Tensor inputIds, Tensor? pixels, IReadOnlyList<ImageGrid>? grids) => EmbedMultimodal(inputIds, pixels, grids);

    /// <summary>
    /// Input embeddings [B, T, hidden] for ids [B, T] whose image-context tokens take the features of
    /// <paramref name="pixels"/> (every image of the batch, in reading order).
    /// </summary>
    public Tensor EmbedMultimodal(Tensor inputIds, ImageBatch? images) => EmbedMultimodal(inputIds, images?.Pixels, images?.Grids);

    public Tensor EmbedMultimodal(Tensor inputIds, Tensor? pixels, IReadOnlyList<ImageGrid>? grids = null)
    {
        using var scope = NewDisposeScope();
        var embeds = Embed(inputIds);
        var isImage = inputIds.eq(ImageTokenId);
        long slots = isImage.sum().item<long>();
        if (pixels is null)
        {
            if (slots != 0) throw new ArgumentException($"the input has {slots} image token positions but no image was given");
            return embeds.MoveToOuterDisposeScope();
        }
        // pixels arrive as float32; a model cast to bf16 (mixed precision) reads them in its own dtype, as transformers casts
        // pixel_values to the vision tower's
        var features = ImageFeatures(pixels.dtype == embeds.dtype ? pixels : pixels.to(embeds.dtype), grids).to(embeds.dtype); // [N, hidden]
        if (slots != features.shape[0])
            throw new ArgumentException($"the input has {slots} image token positions but the images give {features.shape[0]} features");
        var index = isImage.reshape(-1).nonzero().squeeze(1);                             // [N]
        var flat = embeds.reshape(-1, embeds.shape[2]).index_copy(0, index, features);    // [B*T, hidden]
        return flat.view(embeds.shape).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The InternVL layout: InternViT (vision_model) → pixel shuffle → mlp1, every image a stack of fixed-size tiles
/// that each give <see cref="TokensPerTile"/> tokens.
/// </summary>
public sealed class InternVisionLanguageModel : VisionLanguageModel
{
    public readonly VisionTransformer vision_model;
    public readonly nn.Module<Tensor, Tensor> mlp1;

    public InternVisionLanguageModel(ModelConfig config) : base(config, nameof(InternVisionLanguageModel))
    {
        var v = config.Vision ?? throw new ArgumentException("an InternVL-style model needs a vision config");
        vision_model = new VisionTransformer(v);
        mlp1 = VisionProjector.CreateMlp(v, config.Text.HiddenSize);
        RegisterComponents();
    }

    public VisionConfig Vision => Config.Vision!;

    /// <summary>Image tokens per tile (an image of several tiles takes that many times as many).</summary>
    public int TokensPerTile => Vision.NumImageTokens;

    public override int ImageTokens(ImageInput image) => checked((int)image.Values.shape[0] * TokensPerTile);

    /// <summary>pixels [N, C, H, W] (tiles) → image token features [N, T_img, hidden].</summary>
    public Tensor EncodeImages(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = vision_model.forward(pixels);                              // [N, P, Dv]
        var shuffled = VisionProjector.PixelShuffle(patches, Vision.ShuffleFactor, Vision.PixelShuffleVersion); // [N, T_img, k²Dv]
        return mlp1.forward(shuffled).MoveToOuterDisposeScope();
    }

    public override Tensor ImageFeatures(Tensor pixels, IReadOnlyList<ImageGrid>? grids)
    {
        using var scope = NewDisposeScope();
        var f = EncodeImages(pixels);
        return f.reshape(-1, f.shape[2]).MoveToOuterDisposeScope();
    }
}
