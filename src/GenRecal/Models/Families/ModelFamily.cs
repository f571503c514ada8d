using System.Text.Json.Nodes;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Models.Families;

/// <summary>
/// A checkpoint family: everything that differs between InternVL, the project's own layout and other VLMs lives
/// behind this class — reading and writing its config.json, the names its checkpoint gives our parameters, its
/// image preprocessing and image-token count, and its chat template. The recipe, the Recalibrator, the losses and
/// evaluation see only <see cref="CausalLanguageModel"/> / <see cref="VisionLanguageModel"/> and this interface.
/// </summary>
public abstract class ModelFamily
{
    /// <summary>The family's name as config.json says it (its model_type).</summary>
    public abstract string Name { get; }

    /// <summary>What it covers, for the list an unsupported model is refused with.</summary>
    public abstract string Covers { get; }

    /// <summary>True when this family reads the config (by model_type / architectures).</summary>
    internal abstract bool Reads(ConfigJson config);

    internal abstract ModelConfig ReadConfig(ConfigJson config);

    /// <summary>The config of a model directory: config.json and whatever other file the family keeps settings in.</summary>
    internal virtual ModelConfig ReadConfig(ConfigJson config, string dir) => ReadConfig(config);

    public abstract JsonObject WriteConfig(ModelConfig config);

    /// <summary>The checkpoint key of one of our parameter names (vision_model.*, mlp1.*, model.*, lm_head.*).</summary>
    public abstract string CheckpointKey(string parameterName);

    /// <summary>Rearranges tensors read from the family's files into <see cref="CheckpointKey"/>'s names (e.g. fusing
    /// separate q/k/v projections), keeping <paramref name="files"/> (tensor → file, for error messages) in step.
    /// Parts it needs and cannot find are left for the strict load to report by name.</summary>
    public virtual void FromFiles(ModelConfig config, Dictionary<string, Tensor> tensors, Dictionary<string, string> files) { }

    /// <summary>The inverse of <see cref="FromFiles"/>, for saving in the family's own layout.</summary>
    public virtual Dictionary<string, Tensor> ToFiles(ModelConfig config, Dictionary<string, Tensor> tensors) => tensors;

    /// <summary>The checkpoint key of a parameter of a model with <paramref name="config"/> (a family whose names depend
    /// on which language model it holds, e.g. InternVL with InternLM2, overrides this).</summary>
    public virtual string CheckpointKey(string parameterName, ModelConfig config) => CheckpointKey(parameterName);

    /// <summary>Files beside config.json that belong to the checkpoint (processor settings, chat template, generation
    /// config): carried through a save unchanged, so a distilled student is a complete checkpoint of its family.</summary>
    public virtual IReadOnlyList<string> CompanionFiles => ["generation_config.json"];

    /// <summary>The tokenizer of a model directory, with this family's chat template.</summary>
    public abstract ModelTokenizer LoadTokenizer(string dir, ModelConfig config);

    /// <summary>Image-context tokens an image of this size takes.</summary>
    public abstract int ImageTokens(int width, int height, ModelConfig config);

    /// <summary>An image file as this family's processor makes it.</summary>
    public abstract ImageInput LoadImage(string path, ModelConfig config);

    /// <summary>A model of this family with fresh weights.</summary>
    public virtual CausalLanguageModel CreateModel(ModelConfig config) =>
        config.Vision is null ? new CausalLanguageModel(config.Text) : new InternVisionLanguageModel(config);

    /// <summary>One line on how images become tokens (inspect).</summary>
    public abstract string ImageRule(ModelConfig config);

    /// <summary>The directory's tokenizer laid out with <paramref name="template"/>; refused, naming what is missing, when
    /// the tokenizer lacks a token the template writes.</summary>
    protected static ModelTokenizer TokenizerWith(string dir, ChatTemplate template, string templateName) =>
        TokenizerWith(ModelTokenizer.Load(dir), dir, template, templateName);

    /// <summary><paramref name="loaded"/> (read from <paramref name="dir"/>) laid out with <paramref name="template"/>, checked as above.</summary>
    protected static ModelTokenizer TokenizerWith(ModelTokenizer loaded, string dir, ChatTemplate template, string templateName)
    {
        var tok = loaded.WithTemplate(template);
        var missing = template.SpecialTokens().Where(t => !tok.SpecialTokens.ContainsKey(t)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{dir}: the tokenizer has no added token {string.Join(", ", missing.Select(m => $"'{m}'"))}, which {templateName} needs");
        return tok;
    }

    /// <summary>config.json as it was read (every key kept), with the dtype the weights are now saved in, at the top and
    /// in the nested text config.</summary>
    protected static JsonObject SourceAsSaved(ModelConfig config, string textSection)
    {
        var json = config.Source?.DeepClone().AsObject() ?? throw new InvalidOperationException($"a {config.Family.Name} config is written back from the one read");
        json["torch_dtype"] = "float32";
        if (json[textSection] is JsonObject t) t["torch_dtype"] = "float32";
        return json;
    }
}

/// <summary>A family's own settings, defined in its folder and read only there.</summary>
public abstract record FamilySettings;

/// <summary>The families the project reads; config.json picks one by its model_type / architectures.</summary>
public static class ModelFamilies
{
    public static readonly ModelFamily GenRecal = new GenRecalLayout.GenRecalFamily();
    public static readonly ModelFamily InternVL = global::GenRecal.Models.Families.InternVL.InternVlFamily.Instance;
    public static readonly ModelFamily Qwen2VL = global::GenRecal.Models.Families.Qwen2VL.Qwen2VlFamily.Instance;
    public static readonly ModelFamily InternVLHf = global::GenRecal.Models.Families.InternVLHf.InternVlHfFamily.Instance;
    public static readonly IReadOnlyList<ModelFamily> All = [InternVL, InternVLHf, Qwen2VL, GenRecal];

    internal static ModelFamily For(ConfigJson config)
    {
        var family = All.FirstOrDefault(f => f.Reads(config));
        if (family is not null) return family;
        string type = config.Json["model_type"] is JsonValue v && v.TryGetValue<string>(out var t) ? $"model_type '{t}'" : "no model_type";
        string arch = config.Json["architectures"] is JsonArray a ? $", architectures {ConfigJson.Show(a)}" : "";
        throw new InvalidDataException($"{config.File}: {type}{arch} is not a supported model family; supported: " +
            string.Join("; ", All.Select(f => $"{f.Name} ({f.Covers})")));
    }
}
