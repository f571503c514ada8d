using System.Text.Json.Nodes;

namespace GenRecal.Models;

/// <summary>
/// Everything config.json says about a model: the HF text-model keys at the top level (so a VLM
/// checkpoint still reads as a plain Qwen2/LLaMA one), an optional "vision_config", and a "genrecal"
/// section for what HF has no key for (the image placeholder token id).
/// </summary>
public sealed record ModelConfig(LanguageModelConfig Text, VisionConfig? Vision, int? ImageTokenId)
{
    public const string FileName = "config.json";

    public static ModelConfig Load(string dir)
    {
        var j = ConfigJson.Parse(Path.Combine(dir, FileName));
        var text = LanguageModelConfig.Read(j);
        var vision = j.Section("vision_config") is { } v ? VisionConfig.Read(v) : null;
        int? imageToken = j.Section("genrecal")?.Optional<int?>("image_token_id");
        if (vision is not null && imageToken is null)
            throw new InvalidDataException($"{j.File}: has vision_config but no genrecal.image_token_id");
        if (imageToken is { } id && (id < 0 || id >= text.VocabSize))
            throw new InvalidDataException($"{j.File}: genrecal.image_token_id {id} is outside the vocabulary (vocab_size {text.VocabSize})");
        return new ModelConfig(text, vision, imageToken);
    }

    public JsonObject ToJson()
    {
        var json = new JsonObject();
        Text.WriteTo(json);
        if (Vision is not null)
        {
            json["model_type"] = Text.ModelType;
            json["vision_config"] = Vision.ToJson();
            json["genrecal"] = new JsonObject { ["image_token_id"] = ImageTokenId };
        }
        return json;
    }
}
