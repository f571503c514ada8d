using System.Text.Json.Nodes;

namespace GenRecal.Models;

/// <summary>Typed reads from a config.json object that name the file and key when something is wrong.</summary>
internal sealed class ConfigJson(JsonObject json, string file)
{
    public JsonObject Json => json;
    public string File => file;

    /// <summary>A repeated key is an error at parse time (JsonObject would otherwise throw an ArgumentException naming
    /// no file on first access, or one copy would silently win).</summary>
    public static readonly System.Text.Json.JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    public static ConfigJson Parse(string path)
    {
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        try
        {
            return new ConfigJson(JsonNode.Parse(System.IO.File.ReadAllText(path), documentOptions: Strict) as JsonObject
                ?? throw new InvalidDataException($"{path}: expected a JSON object"), path);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>A nested object, or null when the key is absent; any other value is an error, not "absent".</summary>
    public ConfigJson? Section(string key) => json[key] switch
    {
        null => null,
        JsonObject o => new ConfigJson(o, $"{file} [{key}]"),
        var other => throw Invalid(key, $"should be an object, found {Show(other)}"),
    };

    // json[key] is tested directly: for a value type T, Optional<T> returns default(T) (0) when the key is
    // missing, and `?? throw` on it never fires, so a missing key would surface as "must be positive, found 0".
    public T Required<T>(string key) => json[key] is null
        ? throw new InvalidDataException($"{file}: missing required key '{key}'")
        : Optional<T>(key)!;

    public T? Optional<T>(string key)
    {
        var node = json[key];
        if (node is null) return default;
        try
        {
            return node.GetValue<T>();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{file}: key '{key}' should be {typeof(T).Name}, found {Show(node)}");
        }
    }

    public T Optional<T>(string key, T fallback) where T : struct => json[key] is null ? fallback : Required<T>(key);

    public double[] DoubleArray(string key, double[] fallback) => json[key] switch
    {
        null => fallback,
        JsonArray a => a.Select(n => n is JsonValue v && v.TryGetValue<double>(out var d) ? d
            : throw Invalid(key, $"should be an array of numbers, found {Show(a)}")).ToArray(),
        var other => throw Invalid(key, $"should be an array of numbers, found {Show(other)}"),
    };

    /// <summary>A value as JSON for an error message. A string holding half a surrogate pair cannot be written back
    /// (ToJsonString throws), so it is described instead; long values are cut.</summary>
    internal static string Show(JsonNode? node)
    {
        if (node is null) return "null";
        try
        {
            var text = node.ToJsonString();
            return text.Length > 200 ? text[..200] + "..." : text;
        }
        catch (InvalidOperationException)
        {
            return "(text that is not valid Unicode)";
        }
    }

    public InvalidDataException Invalid(string key, string problem) => new($"{file}: key '{key}' {problem}");
}
