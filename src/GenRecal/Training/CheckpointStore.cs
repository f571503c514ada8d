using System.Text.Json;
using System.Text.Json.Serialization;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tensors;
using GenRecal.Tokenization;
using TorchSharp.Modules;

namespace GenRecal.Training;

/// <summary>Where a run stands: enough to continue it exactly.</summary>
public sealed record CheckpointState
{
    [JsonPropertyName("stage")] public Stage Stage { get; init; }
    /// <summary>Optimizer steps completed in this stage.</summary>
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("stage_complete")] public bool StageComplete { get; init; }
    [JsonPropertyName("completed_stages")] public List<Stage> CompletedStages { get; init; } = [];
    /// <summary>Examples consumed in this stage (the data position; the order is a seeded function of it).</summary>
    [JsonPropertyName("data_position")] public long DataPosition { get; init; }
    /// <summary>All randomness of a step is derived from this seed and the step, so no generator state is needed beyond it.</summary>
    [JsonPropertyName("rng_seed")] public int RngSeed { get; init; }
    [JsonPropertyName("created_utc")] public DateTime CreatedUtc { get; init; } = DateTime.UtcNow;
    /// <summary>SHA-256 of optimizer.bin: TorchSharp reads a corrupt one into wrong state or fails deep in native code,
    /// so the bytes are checked before they are handed to it. Null in checkpoints written before it was recorded.</summary>
    [JsonPropertyName("optimizer_sha256")] public string? OptimizerSha256 { get; init; }
}

/// <summary>
/// Checkpoints under OUT/checkpoints: each one a directory (student/ in HF layout, recalibrator/,
/// optimizer.bin, state.json) written under a temporary name with fsync'ed files and renamed into place;
/// latest.json then points to it (atomic replace). A crash at any moment leaves the previous checkpoint
/// and pointer intact. Older checkpoints beyond KeepCheckpoints are removed only after the new one is in place.
/// </summary>
public sealed class CheckpointStore(string root, int keep)
{
    public const string LatestFileName = "latest.json";
    public const string StateFileName = "state.json";
    public const string OptimizerFileName = "optimizer.bin";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    /// <summary>Fault injection: called after each file of a checkpoint is written (a test throws here to simulate a
    /// crash, or sets GENRECAL_FAULT_CHECKPOINT_PAUSE_MS to pause so it can kill the process mid-write).</summary>
    internal Action<string>? AfterFileWritten { get; set; } = Environment.GetEnvironmentVariable("GENRECAL_FAULT_CHECKPOINT_PAUSE_MS") is { } ms
        ? _ => Thread.Sleep(int.Parse(ms, System.Globalization.CultureInfo.InvariantCulture)) // lets a test kill the process mid-write
        : null;

    public string Root => root;

    public string Save(CheckpointState state, CausalLanguageModel student, ModelConfig studentConfig, ModelTokenizer tokenizer,
                       Recalibrator? recalibrator, OptimizerHelper? optimizer)
    {
        Directory.CreateDirectory(root);
        string name = $"{state.Stage.Name()}-step{state.Step:D6}";
        string final = Path.Combine(root, name);
        string tmp = Path.Combine(root, $".partial-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        Pretrained.Save(student, studentConfig, tokenizer, Path.Combine(tmp, "student"));
        AfterFileWritten?.Invoke(Path.Combine(tmp, "student"));
        if (recalibrator is not null)
        {
            recalibrator.Save(Path.Combine(tmp, "recalibrator"));
            AfterFileWritten?.Invoke(Path.Combine(tmp, "recalibrator"));
        }
        if (optimizer is not null)
        {
            var optimizerPath = Path.Combine(tmp, OptimizerFileName);
            AtomicFile.Write(optimizerPath, s =>
            {
                using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                optimizer.save_state_dict(w);
            });
            state = state with { OptimizerSha256 = Sha256(optimizerPath) };
            AfterFileWritten?.Invoke(optimizerPath);
        }
        AtomicFile.WriteAllText(Path.Combine(tmp, StateFileName), JsonSerializer.Serialize(state, Json));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(tmp, final);
        AtomicFile.WriteAllText(Path.Combine(root, LatestFileName), JsonSerializer.Serialize(new { path = name }, Json));
        Prune(name);
        return final;
    }

    /// <summary>The directory and state of the newest complete checkpoint, or null. A corrupt pointer or state is
    /// an error naming the file (never a silent fresh start, which would overwrite the run).</summary>
    public (string Dir, CheckpointState State)? Latest()
    {
        var pointer = Path.Combine(root, LatestFileName);
        if (!File.Exists(pointer)) return null;
        string? name;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(pointer));
            name = doc.RootElement.GetProperty("path").GetString();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{pointer}: corrupt checkpoint pointer, expected {{\"path\": \"<checkpoint folder>\"}} ({e.Message})");
        }
        // the pointer names a folder beside it; anything else (a path out of the store) is corruption
        if (string.IsNullOrEmpty(name) || Path.GetFileName(name) != name || name.StartsWith('.'))
            throw new InvalidDataException($"{pointer}: corrupt checkpoint pointer: '{name}' is not a checkpoint folder name");
        var dir = Path.Combine(root, name);
        var statePath = Path.Combine(dir, StateFileName);
        if (!File.Exists(statePath)) throw new InvalidDataException($"{pointer}: points to {dir}, which has no {StateFileName}");
        CheckpointState? state;
        try
        {
            state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(statePath), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{statePath}: corrupt checkpoint state ({e.Message})");
        }
        if (state is null || state.CompletedStages is null || state.Step < 0 || state.DataPosition < 0)
            throw new InvalidDataException($"{statePath}: corrupt checkpoint state (null, or a negative step or data position)");
        return (dir, state);
    }

    /// <summary>Checks a checkpoint's optimizer.bin against the hash in its state (before the run starts).</summary>
    public static void VerifyOptimizer(string dir, CheckpointState state)
    {
        var path = Path.Combine(dir, OptimizerFileName);
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: missing; the checkpoint is incomplete");
        if (state.OptimizerSha256 is { } expected && !string.Equals(Sha256(path), expected, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path}: corrupt optimizer state (its SHA-256 differs from the one in {Path.Combine(dir, StateFileName)})");
    }

    /// <summary>Reads a checkpoint's optimizer state into <paramref name="optimizer"/>, naming the file when it cannot.</summary>
    public static void LoadOptimizer(string dir, CheckpointState state, OptimizerHelper optimizer)
    {
        VerifyOptimizer(dir, state);
        var path = Path.Combine(dir, OptimizerFileName);
        try
        {
            using var reader = new BinaryReader(File.OpenRead(path));
            optimizer.load_state_dict(reader);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException or InvalidOperationException
                                    or FormatException or OverflowException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"{path}: corrupt optimizer state ({e.Message})");
        }
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    void Prune(string current)
    {
        foreach (var partial in Directory.GetDirectories(root, ".partial-*")) Directory.Delete(partial, recursive: true);
        var complete = Directory.GetDirectories(root).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith('.'))
            .Select(n => n!).Where(n => File.Exists(Path.Combine(root, n, StateFileName)))
            .OrderBy(n => Directory.GetLastWriteTimeUtc(Path.Combine(root, n))).ThenBy(n => n, StringComparer.Ordinal).ToList();
        foreach (var old in complete.Where(n => n != current).SkipLast(Math.Max(0, keep - 1)))
            Directory.Delete(Path.Combine(root, old), recursive: true);
    }
}
