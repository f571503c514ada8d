using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// vision encoder → projector → VLM-body → VLM-head. The text model keeps HF's text-only key names
/// (model.*, lm_head.*) and the vision parts sit beside it (vision_model.*, mlp1.*), InternVL style.
/// Image placeholder ids in the input are replaced, in order, by projected image features.
/// </summary>
public sealed class VisionLanguageModel : CausalLanguageModel
{
    public readonly VisionTransformer vision_model;
    public readonly nn.Module<Tensor, Tensor> mlp1;

    public VisionLanguageModel(ModelConfig config) : base(config.Text, nameof(VisionLanguageModel))
    {
        Config = config;
        var v = config.Vision ?? throw new ArgumentException("a VisionLanguageModel needs a vision config");
        vision_model = new VisionTransformer(v);
        mlp1 = VisionProjector.CreateMlp(v, config.Text.HiddenSize);
        RegisterComponents();
    }

    public ModelConfig Config { get; }
    public VisionConfig Vision => Config.Vision!;
    public int ImageTokenId => Config.ImageTokenId!.Value;
    /// <summary>Image tokens per tile (an image of several tiles takes that many times as many).</summary>
    public int TokensPerTile => Vision.NumImageTokens;

    /// <summary>An image file as this model's family preprocesses it: [tiles, C, S, S].</summary>
    public Tensor LoadImage(string path) => Config.Family.LoadImage(path, Config);

    /// <summary>Image tokens for pixels of <paramref name="tiles"/> tiles.</summary>
    public int ImageTokens(long tiles) => checked((int)tiles * TokensPerTile);

    /// <summary>Image tokens an image file takes, from its header's size alone (no pixels decoded).</summary>
    public int ImageTokensFor(string path)
    {
        var (w, h) = Data.ImagePreprocessor.Size(path);
        return ImageTokens(Config.Family.Tiles(w, h, Config));
    }

    /// <summary>pixels [N, C, H, W] (tiles) → image token features [N, T_img, hidden].</summary>
    public Tensor EncodeImages(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = vision_model.forward(pixels);                              // [N, P, Dv]
        var shuffled = VisionProjector.PixelShuffle(patches, Vision.ShuffleFactor, Vision.PixelShuffleVersion); // [N, T_img, k²Dv]
        return mlp1.forward(shuffled).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Input embeddings [B, T, hidden] for ids [B, T] whose image-context tokens (TokensPerTile per tile) take the
    /// features of <paramref name="pixels"/> [N, C, H, W] (the tiles of every image, in reading order).
    /// </summary>
    public Tensor EmbedMultimodal(Tensor inputIds, Tensor? pixels)
    {
        using var scope = NewDisposeScope();
        var embeds = Embed(inputIds);
        var isImage = inputIds.eq(ImageTokenId);
        long slots = isImage.sum().item<long>();
        long images = pixels?.shape[0] ?? 0;
        if (slots != images * TokensPerTile)
            throw new ArgumentException($"the input has {slots} image token positions but {images} tile(s) × {TokensPerTile} tokens were given");
        if (images == 0) return embeds.MoveToOuterDisposeScope();
        var features = EncodeImages(pixels!).reshape(-1, embeds.shape[2]).to(embeds.dtype); // [N*T_img, hidden]
        var index = isImage.reshape(-1).nonzero().squeeze(1);                             // [N*T_img]
        var flat = embeds.reshape(-1, embeds.shape[2]).index_copy(0, index, features);    // [B*T, hidden]
        return flat.view(embeds.shape).MoveToOuterDisposeScope();
    }
}
