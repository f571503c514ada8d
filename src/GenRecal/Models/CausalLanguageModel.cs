using GenRecal.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// VLM-body + VLM-head (transformers Qwen2ForCausalLM). Body and head are separate calls because
/// GenRecal scores the Recalibrator's output through the teacher's head alone. With tied embeddings
/// there is no lm_head module: the head multiplies by embed_tokens.weight.
/// </summary>
public class CausalLanguageModel : nn.Module
{
    public readonly LanguageModel model;
    public readonly Linear? lm_head;

    public CausalLanguageModel(LanguageModelConfig c, string name = nameof(CausalLanguageModel)) : base(name)
    {
        model = new LanguageModel(c);
        lm_head = c.TieWordEmbeddings ? null : nn.Linear(c.HiddenSize, c.VocabSize, hasBias: false);
        // TorchSharp registers fields once; a subclass registers after setting its own fields.
        if (GetType() == typeof(CausalLanguageModel)) RegisterComponents();
    }

    public LanguageModelConfig TextConfig => model.Config;

    /// <summary>The dtype the weights compute in (float32, or bf16 once cast for mixed precision).</summary>
    public ScalarType Dtype => model.embed_tokens.weight!.dtype;

    /// <summary>Token embeddings [B, T, hidden] for ids [B, T].</summary>
    public Tensor Embed(Tensor inputIds) => model.embed_tokens.forward(inputIds);

    /// <summary>Input embeddings for ids and, for a VLM, its images (every image of the batch in order); a text model
    /// refuses images.</summary>
    public virtual Tensor EmbedInputs(Tensor inputIds, Tensor? pixels, IReadOnlyList<ImageGrid>? grids) =>
        pixels is null ? Embed(inputIds) : throw new ArgumentException("images were given to a model without a vision encoder");

    /// <summary>Position ids where a family numbers positions its own way (Qwen2-VL's 3-D M-RoPE positions, [3, B, T]);
    /// null where positions follow the padding mask.</summary>
    public virtual Tensor? PositionIds(Tensor inputIds, Tensor? attentionMask, IReadOnlyList<ImageGrid>? grids) => null;

    /// <summary>Last hidden states after the final norm, [B, T, hidden].</summary>
    public Tensor Body(Tensor inputsEmbeds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
        model.Forward(inputsEmbeds, attentionMask, positionIds, cache);

    /// <summary>Logits [.., vocab] for hidden states [.., hidden].</summary>
    public Tensor Head(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, model.embed_tokens.weight!) : lm_head.forward(hidden);

    /// <summary>Logits for token ids: Head(Body(Embed(ids))).</summary>
    public Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return Head(Body(Embed(inputIds), attentionMask, positionIds, cache)).MoveToOuterDisposeScope();
    }

    public KvCache NewCache() => new(TextConfig.NumHiddenLayers);

    /// <summary>Parameter count of the named component prefixes (for inspect and reports).</summary>
    public long CountParameters(string prefix = "") =>
        named_parameters().Where(p => p.name.StartsWith(prefix, StringComparison.Ordinal)).Sum(p => p.parameter.numel());
}
