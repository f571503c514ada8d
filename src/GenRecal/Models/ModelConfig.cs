using System.Text.Json.Nodes;
using GenRecal.Models.Families;

namespace GenRecal.Models;

/// <summary>How a family cuts an image into encoder tiles (InternVL's dynamic tiling); null for one resized tile.</summary>
public sealed record ImageTiling(int MinTiles, int MaxTiles, bool Thumbnail);

/// <summary>
/// What every family's config.json says in common terms: the language model, the vision encoder and projector, the
/// image-context token id, how images are tiled and which chat template the family's code uses. <see cref="Family"/>
/// reads and writes the family's own file layout; <see cref="Source"/> keeps the file as read, so a model saved back
/// keeps every key the project does not use.
/// </summary>
public sealed record ModelConfig(LanguageModelConfig Text, VisionConfig? Vision, int? ImageTokenId)
{
    public const string FileName = "config.json";

    public ModelFamily Family { get; init; } = ModelFamilies.GenRecal;
    public ImageTiling? Tiling { get; init; }
    /// <summary>The family's template name (InternVL's "template" key), null where the tokenizer files carry it.</summary>
    public string? TemplateName { get; init; }
    public JsonObject? Source { get; init; }
    /// <summary>The family's companion files as read (name → text), written back by a save.</summary>
    public IReadOnlyDictionary<string, string> Companions { get; init; } = new Dictionary<string, string>();
    /// <summary>What only one family's code reads (e.g. Qwen2-VL's encoder and processor), in that family's own type.</summary>
    public FamilySettings? Settings { get; init; }

    public static ModelConfig Load(string dir)
    {
        var j = ConfigJson.Parse(Path.Combine(dir, FileName));
        var family = ModelFamilies.For(j);
        var companions = family.CompanionFiles.Where(f => File.Exists(Path.Combine(dir, f))).ToDictionary(f => f, f => File.ReadAllText(Path.Combine(dir, f)));
        return family.ReadConfig(j, dir) with { Companions = companions };
    }

    public JsonObject ToJson() => Family.WriteConfig(this);
}
