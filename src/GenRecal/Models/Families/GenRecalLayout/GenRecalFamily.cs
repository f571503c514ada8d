using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Tokenization;

namespace GenRecal.Models.Families.GenRecalLayout;

/// <summary>
/// HF's Qwen2 / LLaMA causal LM layout (model.*, lm_head.*, text keys at the top of config.json) and the project's
/// own VLM on top of it: a "vision_config" section (a plain ViT, pixel shuffle and mlp1, InternVL's key names
/// vision_model.* / mlp1.*), one square tile per image resized bilinearly, and a "genrecal" section with the image
/// token id. The chat template is the one the tokenizer files carry. The demo's models are this family.
/// A VLM is written as model_type "genrecal_vlm" (its LM's own type under "text_model_type"), never as
/// Qwen2ForCausalLM: transformers would load that as a text model and drop the vision weights without an error.
/// Directories written before, as qwen2/llama with a vision_config, still load.
/// </summary>
internal sealed class GenRecalFamily : ModelFamily
{
    public override string Name => "qwen2";
    public override string Covers => "Qwen2ForCausalLM / LlamaForCausalLM text models (model_type qwen2, llama), with the project's own vision_config section for a VLM";

    internal override bool Reads(ConfigJson config) =>
        config.Optional<string>("model_type") is null or "qwen2" or "llama" or "genrecal_vlm" && config.Json["llm_config"] is null;

    const string VlmType = "genrecal_vlm";

    internal override ModelConfig ReadConfig(ConfigJson j)
    {
        var textJson = j;
        if (j.Optional<string>("model_type") == VlmType)
        {
            var copy = j.Json.DeepClone().AsObject();
            copy["model_type"] = j.Optional<string>("text_model_type") ?? "qwen2";
            textJson = new ConfigJson(copy, j.File);
        }
        var text = LanguageModelConfig.Read(textJson);
        var vision = j.Section("vision_config") is { } v ? VisionConfig.Read(v) : null;
        int? imageToken = j.Section("genrecal")?.Optional<int?>("image_token_id");
        if (vision is not null && imageToken is null)
            throw new InvalidDataException($"{j.File}: has vision_config but no genrecal.image_token_id");
        if (imageToken is { } id && (id < 0 || id >= text.VocabSize))
            throw new InvalidDataException($"{j.File}: genrecal.image_token_id {id} is outside the vocabulary (vocab_size {text.VocabSize})");
        return new ModelConfig(text, vision, imageToken) { Family = this, Source = j.Json };
    }

    public override JsonObject WriteConfig(ModelConfig config)
    {
        var json = new JsonObject();
        config.Text.WriteTo(json);
        if (config.Vision is not null)
        {
            json["text_model_type"] = config.Text.ModelType;
            json["model_type"] = VlmType;
            json["architectures"] = new JsonArray("GenRecalVisionLanguageModel");
            json["vision_config"] = config.Vision.ToJson();
            json["genrecal"] = new JsonObject { ["image_token_id"] = config.ImageTokenId };
        }
        return json;
    }

    public override string CheckpointKey(string parameterName) => parameterName;

    const string ChatTemplateFile = "chat_template.jinja";

    public override IReadOnlyList<string> CompanionFiles => ["generation_config.json", ChatTemplateFile];

    /// <summary>
    /// The directory's tokenizer with the chat layout its checkpoint was trained with. GenRecal's own
    /// genrecal_tokenizer.json keeps the template it saved. Plain HF files: a tokenizer_config.json chat_template that
    /// <see cref="HfChatTemplates"/> recognises (or chat_template.jinja's, which newer transformers saves instead) gives
    /// that layout (Qwen2 / Qwen2.5 / LLaMA-3 / LLaMA-3.1 Instruct, ChatML); no chat_template at all keeps ChatML,
    /// since a base model has no chat format of its own and ChatML is the layout GenRecal trains its students with;
    /// any other template is refused, naming the file and the templates the project reproduces, rather than laying
    /// out prompts the model was not trained on.
    /// </summary>
    public override ModelTokenizer LoadTokenizer(string dir, ModelConfig config)
    {
        var tok = ModelTokenizer.Load(dir);
        if (tok.TemplateSaved) return tok;
        // transformers 4.43+ may save the template as chat_template.jinja instead, which wins when both exist
        var path = Path.Combine(dir, ChatTemplateFile);
        string? jinja = File.Exists(path) ? File.ReadAllText(path) : tok.HfChatTemplate;
        if (jinja is null) return tok;
        if (!File.Exists(path)) path = Path.Combine(dir, ModelTokenizer.HfConfigFileName);
        var template = HfChatTemplates.Recognise(jinja, tok.BosToken)
            ?? throw new InvalidDataException($"{path}: the chat_template is not one the project can reproduce" +
                (HfChatTemplates.KnownUnsupported(jinja) is { } why ? $" ({why})" : "") +
                $"; known: {string.Join("; ", HfChatTemplates.Names)}");
        // a text checkpoint's tokenizer: the turns' tokens must be there (images use the project's own file)
        var missing = template.TurnTokens().Where(t => !tok.SpecialTokens.ContainsKey(t)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{dir}: the tokenizer has no added token {string.Join(", ", missing.Select(m => $"'{m}'"))}, " +
                $"which {path}'s chat_template ({HfChatTemplates.Name(jinja)}) writes");
        return tok.WithTemplate(template);
    }

    public override int ImageTokens(int width, int height, ModelConfig config) => config.Vision?.NumImageTokens ?? 0;

    public override ImageInput LoadImage(string path, ModelConfig config) =>
        new(ImagePreprocessor.Load(path, config.Vision ?? throw new ArgumentException("a text-only model takes no images")).unsqueeze(0), null);

    public override string ImageRule(ModelConfig config) => config.Vision is not { } v ? "no images"
        : $"one {v.ImageSize}px tile per image (bilinear resize), patch {v.PatchSize}, pixel shuffle x{v.ShuffleFactor} → {v.NumImageTokens} tokens";
}
