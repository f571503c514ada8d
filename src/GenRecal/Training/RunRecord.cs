using System.Text.Json.Nodes;
using GenRecal.Tensors;

namespace GenRecal.Training;

/// <summary>
/// What a run was started with, kept in OUT so a resume can refuse anything that would break an exact resume:
/// training_config.json (every key but checkpoint_every and keep_checkpoints, which change no step) and
/// run.json (the data file's path, size and SHA-256, the data order being a function of its lines; and the runtime's
/// threads, allocator setting and LibTorch backend, for the record only).
/// </summary>
public static class RunRecord
{
    public const string ConfigFileName = "training_config.json";
    public const string FileName = "run.json";
    static readonly HashSet<string> ChangeableKeys = ["checkpoint_every", "keep_checkpoints"];

    public static void Write(string outDir, TrainingConfig config, string dataPath)
    {
        AtomicFile.WriteAllText(Path.Combine(outDir, ConfigFileName), config.ToJson());
        AtomicFile.WriteAllText(Path.Combine(outDir, FileName), new JsonObject { ["data"] = DataJson(dataPath), ["runtime"] = RuntimeJson() }.ToJsonString(new() { WriteIndented = true }));
    }

    /// <summary>Throws naming every key whose value differs from the run being resumed; returns warnings.</summary>
    public static List<string> CheckResume(string outDir, TrainingConfig config, string dataPath)
    {
        var warnings = new List<string>();
        var changes = new List<string>();
        var configPath = Path.Combine(outDir, ConfigFileName);
        if (File.Exists(configPath))
        {
            var before = Flatten(Parse(configPath));
            var now = Flatten(JsonNode.Parse(config.ToJson())!);
            foreach (var key in before.Keys.Union(now.Keys).Where(k => !ChangeableKeys.Contains(k)).Order(StringComparer.Ordinal))
            {
                string a = before.GetValueOrDefault(key) ?? "(absent)", b = now.GetValueOrDefault(key) ?? "(absent)";
                if (a != b) changes.Add($"{key} was {a} in {configPath}, is {b} now");
            }
        }
        else warnings.Add($"{configPath} is missing, so the resumed run's settings cannot be compared with the original's");
        var runPath = Path.Combine(outDir, FileName);
        if (File.Exists(runPath))
        {
            var data = Parse(runPath)["data"] as JsonObject ?? throw new InvalidDataException($"{runPath}: missing 'data'");
            var current = DataJson(dataPath);
            foreach (var key in new[] { "size", "sha256" })
                if (Models.ConfigJson.Show(data[key]) != current[key]!.ToJsonString())
                    changes.Add($"data {key} was {Models.ConfigJson.Show(data[key])} in {runPath}, is {current[key]!.ToJsonString()} now ({dataPath})");
            if (changes.Count == 0 && data["path"]?.GetValue<string>() is { } oldPath && oldPath != current["path"]!.GetValue<string>())
                warnings.Add($"the data file moved from {oldPath} to {current["path"]} (same content)");
        }
        else warnings.Add($"{runPath} is missing, so the data file cannot be compared with the original run's");
        if (changes.Count > 0)
            throw new ArgumentException($"resuming would not continue the same run: {string.Join("; ", changes)}. Resume with the original settings and data, or start afresh in another output directory");
        return warnings;
    }

    /// <summary>How the process computed: none of it changes a result (a resume may use other values), all of it the speed.</summary>
    static JsonObject RuntimeJson() => new()
    {
        ["threads"] = TorchSharp.torch.get_num_threads(),
        ["keep_freed_memory"] = Runtime.FreedMemory.Kept,
        ["backend"] = Runtime.TorchRuntime.Mode,
    };

    static JsonObject DataJson(string dataPath) => new()
    {
        ["path"] = Path.GetFullPath(dataPath),
        ["size"] = new FileInfo(dataPath).Length,
        ["sha256"] = CheckpointStore.Sha256(dataPath),
    };

    static JsonObject Parse(string path) => Models.ConfigJson.Parse(path).Json;

    /// <summary>Leaf values by dotted key ("steps.1", "loss_weights.kl"), as JSON text.</summary>
    static Dictionary<string, string> Flatten(JsonNode node)
    {
        var result = new Dictionary<string, string>();
        void Walk(JsonNode? n, string prefix)
        {
            if (n is JsonObject o) foreach (var (k, v) in o) Walk(v, prefix.Length == 0 ? k : $"{prefix}.{k}");
            else result[prefix] = Models.ConfigJson.Show(n);
        }
        Walk(node, "");
        return result;
    }
}
