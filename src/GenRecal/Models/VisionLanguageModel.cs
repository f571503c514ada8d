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
    public int NumImageTokens => Vision.NumImageTokens;

    /// <summary>pixels [N, C, H, W] → image token features [N, T_img, hidden].</summary>
    public Tensor EncodeImages(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var patches = vision_model.forward(pixels);                              // [N, P, Dv]
        var shuffled = VisionProjector.PixelShuffle(patches, Vision.ShuffleFactor); // [N, T_img, k²Dv]
        return mlp1.forward(shuffled).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Input embeddings [B, T, hidden] for ids [B, T] whose image placeholders (already expanded to
    /// NumImageTokens per image) take the features of <paramref name="pixels"/> [N, C, H, W] in reading order.
    /// </summary>
    public Tensor EmbedMultimodal(Tensor inputIds, Tensor? pixels)
    {
        using var scope = NewDisposeScope();
        var embeds = Embed(inputIds);
        var isImage = inputIds.eq(ImageTokenId);
        long slots = isImage.sum().item<long>();
        long images = pixels?.shape[0] ?? 0;
        if (slots != images * NumImageTokens)
            throw new ArgumentException($"the input has {slots} image token positions but {images} image(s) × {NumImageTokens} tokens were given");
        if (images == 0) return embeds.MoveToOuterDisposeScope();
        var features = EncodeImages(pixels!).reshape(-1, embeds.shape[2]).to(embeds.dtype); // [N*T_img, hidden]
        var index = isImage.reshape(-1).nonzero().squeeze(1);                             // [N*T_img]
        var flat = embeds.reshape(-1, embeds.shape[2]).index_copy(0, index, features);    // [B*T, hidden]
        return flat.view(embeds.shape).MoveToOuterDisposeScope();
    }
}
