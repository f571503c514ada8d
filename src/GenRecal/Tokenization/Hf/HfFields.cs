using System.Text.Json.Nodes;

namespace GenRecal.Tokenization.Hf;

/// <summary>
/// Reads one component object of a tokenizer file (a normalizer, pre-tokenizer, model or decoder) and refuses,
/// by name, any key the component's reader did not ask for: an option we do not implement must never be ignored.
/// </summary>
internal sealed class HfFields
{
    readonly JsonObject obj;
    readonly HashSet<string> read = ["type"];

    public HfFields(JsonNode? node, string path, string where)
    {
        Path = path;
        Where = where;
        obj = node as JsonObject ?? throw new InvalidDataException($"{path}: {where} must be an object, found {Models.ConfigJson.Show(node)}");
        Type = obj["type"] is JsonValue v && v.TryGetValue<string>(out var t) ? t : throw Error("needs a string 'type'");
    }

    public string Path { get; }
    public string Where { get; }
    public string Type { get; }

    public InvalidDataException Error(string problem) => new($"{Path}: {Where} {problem}");

    /// <summary>The component type is not implemented: refused by name.</summary>
    public InvalidDataException Unsupported(string kind) => new($"{Path}: {Where}: {kind} type '{Type}' is not supported");

    public JsonNode? Node(string key)
    {
        read.Add(key);
        return obj[key];
    }

    public string? OptionalString(string key) => Node(key) switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => throw Error($"'{key}' must be a string, found {Models.ConfigJson.Show(other)}"),
    };

    public string String(string key) => OptionalString(key) ?? throw Error($"needs a string '{key}'");

    public bool Bool(string key, bool fallback) => Node(key) switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        var other => throw Error($"'{key}' must be true or false, found {Models.ConfigJson.Show(other)}"),
    };

    public int Int(string key, int fallback) => Node(key) switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<int>(out var n) && n >= 0 => n,
        var other => throw Error($"'{key}' must be a non-negative integer, found {Models.ConfigJson.Show(other)}"),
    };

    public JsonArray Array(string key) => Node(key) as JsonArray ?? throw Error($"needs an array '{key}'");

    /// <summary>A <c>{"String": s}</c> or <c>{"Regex": r}</c> pattern as a compiled regex.</summary>
    public System.Text.RegularExpressions.Regex Pattern(string key)
    {
        var p = Node(key) as JsonObject ?? throw Error($"needs a pattern object '{key}' ({{\"String\": ...}} or {{\"Regex\": ...}})");
        if (p.Count == 1 && p["String"] is JsonValue s && s.TryGetValue<string>(out var literal))
            return new(System.Text.RegularExpressions.Regex.Escape(literal), System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        if (p.Count == 1 && p["Regex"] is JsonValue r && r.TryGetValue<string>(out var regex))
            return HfRegex.Compile(regex, $"{Path}: {Where}");
        throw Error($"'{key}' must be {{\"String\": ...}} or {{\"Regex\": ...}}, found {Models.ConfigJson.Show(p)}");
    }

    /// <summary>Refuses every key no reader asked for.</summary>
    public void Done()
    {
        var unknown = obj.Select(kv => kv.Key).Where(k => !read.Contains(k)).ToList();
        if (unknown.Count > 0) throw Error($"({Type}) option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(k => $"'{k}'"))} not supported");
    }
}
