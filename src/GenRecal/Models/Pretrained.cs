using System.Text.Json.Nodes;
using GenRecal.Tensors;
using GenRecal.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>A model with its config and tokenizer, as one directory in HuggingFace layout.</summary>
public sealed record PretrainedModel(CausalLanguageModel Model, ModelConfig Config, ModelTokenizer Tokenizer, string Directory) : IDisposable
{
    /// <summary>The dtype every floating-point weight had in the checkpoint's files (BF16 for most released VLMs), or
    /// Float32 when they were float32 or mixed. The model itself always loads in float32.</summary>
    public ScalarType StoredDtype { get; init; } = ScalarType.Float32;

    /// <summary>The model as a VLM, or null for a text-only checkpoint.</summary>
    public VisionLanguageModel? Vlm => Model as VisionLanguageModel;

    /// <summary>Frees the weights' native memory now rather than at some later collection.</summary>
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Loads and saves model directories: config.json, model.safetensors or shards listed in
/// model.safetensors.index.json (HF weight names), and the tokenizer files. Loading is strict:
/// missing and unexpected keys, shape mismatches and unsupported dtypes are reported together.
/// </summary>
public static class Pretrained
{
    public const string WeightsFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";
    /// <summary>Tensors some checkpoints carry that the model recomputes (transformers wrote them before 4.3x).</summary>
    const string SkippedSuffix = "rotary_emb.inv_freq";

    public static CausalLanguageModel Create(ModelConfig config) => config.Family.CreateModel(config);

    public static PretrainedModel Load(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model directory not found");
        var config = ModelConfig.Load(dir);
        var tokenizer = config.Family.LoadTokenizer(dir, config);
        string configPath = Path.Combine(dir, ModelConfig.FileName);
        // Real checkpoints list added tokens past the embedding (InternVL3-hf's <video>): harmless while no input uses
        // them, which the collator and generate check. The ordinary vocabulary and the template's tokens must fit.
        int vocab = config.Text.VocabSize;
        var needed = tokenizer.Template.SpecialTokens().Where(t => tokenizer.SpecialTokens.TryGetValue(t, out var id) && id >= vocab).ToList();
        if (tokenizer.OrdinaryVocabSize > vocab || needed.Count > 0)
            throw new InvalidDataException($"{configPath}: vocab_size {vocab} is smaller than the tokenizer's " +
                (needed.Count > 0 ? $"ids of {string.Join(", ", needed.Select(t => $"'{t}' ({tokenizer.SpecialTokens[t]})"))}" : $"{tokenizer.OrdinaryVocabSize} ordinary ids") +
                $" ({tokenizer.BaseName} in {dir})");
        // a family that takes the image token from the tokenizer (InternVL) has no id in its config
        if (config.Vision is not null && config.ImageTokenId is null) config = config with { ImageTokenId = tokenizer.ImageTokenId };
        if (config.ImageTokenId is { } img && tokenizer.SpecialTokens.TryGetValue(tokenizer.Template.ImageContext, out var tokImg) && img != tokImg)
            throw new InvalidDataException($"{configPath}: image token id {img} differs from the tokenizer's '{tokenizer.Template.ImageContext}' id {tokImg}");
        var model = Create(config);
        var stored = LoadWeights(model, dir, keyOf: n => config.Family.CheckpointKey(n, config), config: config);
        model.eval();
        return new PretrainedModel(model, config, tokenizer, dir) { StoredDtype = stored };
    }

    /// <summary>Writes the model in its family's own layout: its config.json, its checkpoint key names, the tokenizer files.</summary>
    public static void Save(CausalLanguageModel model, ModelConfig config, ModelTokenizer tokenizer, string dir)
    {
        System.IO.Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, ModelConfig.FileName), config.ToJson().ToJsonString(new() { WriteIndented = true }));
        Safetensors.Save(Path.Combine(dir, WeightsFileName), config.Family.ToFiles(config, StateDict(model, n => config.Family.CheckpointKey(n, config))),
                         new Dictionary<string, string> { ["format"] = "pt" });
        var index = Path.Combine(dir, IndexFileName);
        if (File.Exists(index)) File.Delete(index); // a stale shard index would shadow the new single file
        foreach (var (name, text) in config.Companions) AtomicFile.WriteAllText(Path.Combine(dir, name), text);
        tokenizer.Save(dir);
    }

    /// <summary>The parameters under their checkpoint names (our names unless <paramref name="keyOf"/> maps them; all
    /// parameters are saved, buffers are recomputed).</summary>
    public static Dictionary<string, Tensor> StateDict(nn.Module model, Func<string, string>? keyOf = null) =>
        model.named_parameters().ToDictionary(p => keyOf?.Invoke(p.name) ?? p.name, p => (Tensor)p.parameter);

    /// <summary>Reads the weight files of <paramref name="dir"/> into <paramref name="model"/>; <paramref name="keyOf"/>
    /// gives each parameter's name in the files. Returns the files' dtype when every weight had the same one (else Float32).</summary>
    public static ScalarType LoadWeights(nn.Module model, string dir, string weightsFile = WeightsFileName, Func<string, string>? keyOf = null,
                                         ModelConfig? config = null)
    {
        var (tensors, files) = ReadWeightFiles(dir, weightsFile);
        try
        {
            // the weights' dtypes, not those of tensors the loader skips (old checkpoints' float32 rotary inv_freq)
            var dtypes = tensors.Where(kv => !kv.Key.EndsWith(SkippedSuffix, StringComparison.Ordinal)).Select(kv => kv.Value.dtype).Distinct().ToList();
            config?.Family.FromFiles(config, tensors, files);
            Assign(model, tensors, files, dir, keyOf ?? (n => n));
            return dtypes.Count == 1 ? dtypes[0] : ScalarType.Float32;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>The tensors and, for each, the file it came from (so an error can name it).</summary>
    static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Files) ReadWeightFiles(string dir, string weightsFile)
    {
        string single = Path.Combine(dir, weightsFile), index = Path.Combine(dir, IndexFileName);
        var result = new Dictionary<string, Tensor>();
        var files = new Dictionary<string, string>();
        if (File.Exists(index))
        {
            var map = ConfigJson.Parse(index).Json["weight_map"] as JsonObject ?? throw new InvalidDataException($"{index}: missing 'weight_map' object");
            var shards = map.Select(kv => kv.Value is JsonValue v && v.TryGetValue<string>(out var f) && f.Length > 0 && Path.GetFileName(f) == f ? f
                : throw new InvalidDataException($"{index}: weight_map['{kv.Key}'] must be a file name in {dir}, found {ConfigJson.Show(kv.Value)}")).ToList();
            foreach (var shard in shards.Distinct())
            {
                var shardPath = Path.Combine(dir, shard);
                foreach (var (name, t) in Safetensors.Load(shardPath))
                {
                    if (map[name] is not JsonValue listed || listed.GetValue<string>() != shard)
                        throw new InvalidDataException($"{index}: tensor '{name}' is in {shard} but the index does not list it there");
                    result[name] = t;
                    files[name] = shardPath;
                }
            }
            return (result, files);
        }
        if (!File.Exists(single)) throw new FileNotFoundException($"{dir}: no weights: expected {weightsFile} or {IndexFileName}");
        foreach (var (name, t) in Safetensors.Load(single))
        {
            result[name] = t;
            files[name] = single;
        }
        return (result, files);
    }

    static bool AllFinite(Tensor t)
    {
        using var finite = t.isfinite();
        using var all = finite.all();
        return all.item<bool>();
    }

    static void Assign(nn.Module model, Dictionary<string, Tensor> tensors, Dictionary<string, string> files, string dir, Func<string, string> keyOf)
    {
        var parameters = model.named_parameters().ToDictionary(p => keyOf(p.name), p => p.parameter);
        var missing = parameters.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        // HF drops lm_head.weight from tied checkpoints; with tied embeddings we have no lm_head at all.
        var unexpected = tensors.Keys.Where(k => !parameters.ContainsKey(k) && !k.EndsWith(SkippedSuffix, StringComparison.Ordinal)).ToList();
        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing keys: {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? $" (+{missing.Count - 20} more)" : "")}");
        if (unexpected.Count > 0) problems.Add($"unexpected keys: {string.Join(", ", unexpected.Take(20))}{(unexpected.Count > 20 ? $" (+{unexpected.Count - 20} more)" : "")}");
        foreach (var (name, p) in parameters)
        {
            if (!tensors.TryGetValue(name, out var t)) continue;
            if (!t.shape.SequenceEqual(p.shape))
                problems.Add($"'{name}' has shape [{string.Join(", ", t.shape)}] in the file but the config needs [{string.Join(", ", p.shape)}]");
            else if (!t.is_floating_point())
                problems.Add($"'{name}' has dtype {t.dtype}; weights must be floating point");
            // a NaN or Inf weight poisons every output; found here it names the tensor, found in training only the step
            else if (!AllFinite(t))
                problems.Add($"'{name}' in {files[name]} has NaN or Inf values");
        }
        if (problems.Count > 0) throw new InvalidDataException($"{dir}: weights do not match config.json: {string.Join("; ", problems)}");
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters) p.copy_(tensors[name].to(p.dtype));
    }
}
