using System.Text.Json.Nodes;

namespace GenRecal.Models;

/// <summary>Typed reads from a config.json object that name the file and key when something is wrong.</summary>
internal sealed class ConfigJson(JsonObject json, string file)
{
    public JsonObject Json => json;
    public string File => file;

    public static ConfigJson Parse(string path)
    {
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        try
        {
            return new ConfigJson(JsonNode.Parse(System.IO.File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: expected a JSON object"), path);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
    }

    public ConfigJson? Section(string key) => json[key] is JsonObject o ? new ConfigJson(o, $"{file} [{key}]") : null;

    public T Required<T>(string key) => Optional<T>(key) ?? throw new InvalidDataException($"{file}: missing required key '{key}'");

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
            throw new InvalidDataException($"{file}: key '{key}' should be {typeof(T).Name}, found {node.ToJsonString()}");
        }
    }

    public T Optional<T>(string key, T fallback) where T : struct => json[key] is null ? fallback : Required<T>(key);

    public double[] DoubleArray(string key, double[] fallback) =>
        json[key] is JsonArray a ? a.Select(n => n!.GetValue<double>()).ToArray() : fallback;

    public InvalidDataException Invalid(string key, string problem) => new($"{file}: key '{key}' {problem}");
}
