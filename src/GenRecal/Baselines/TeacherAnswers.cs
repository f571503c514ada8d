using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Tokenization;

namespace GenRecal.Baselines;

/// <summary>
/// The teacher's greedy answer to each example's question, computed once and cached on disk: the targets of
/// sequence-level KD (Kim &amp; Rush 2016), and the answers of a transfer set's unlabelled examples. The cache is an
/// append-only JSON-lines file keyed by the teacher's identity (a hash of its files) and the example (id, image,
/// question), so arms, variants and seeds that share a teacher and data share its generations, and a run
/// interrupted mid-way keeps what it had generated (a torn last line is ignored).
/// </summary>
public sealed class TeacherAnswers
{
    readonly PretrainedModel teacher;
    readonly string cachePath;
    readonly int maxNewTokens;
    readonly string teacherId;
    readonly Dictionary<string, string> cache = new();

    public TeacherAnswers(PretrainedModel teacher, string cachePath, int maxNewTokens)
    {
        this.teacher = teacher;
        this.cachePath = cachePath;
        this.maxNewTokens = maxNewTokens;
        teacherId = Identity(teacher.Directory);
        if (!File.Exists(cachePath)) return;
        foreach (var line in File.ReadLines(cachePath))
        {
            JsonObject? o;
            try { o = JsonNode.Parse(line) as JsonObject; }
            catch (System.Text.Json.JsonException) { continue; } // a torn last line of an interrupted run
            if (o?["key"]?.GetValue<string>() is { } key && o["answer"]?.GetValue<string>() is { } answer) cache[key] = answer;
        }
    }

    /// <summary>Generations run so far by this instance (0 when everything came from the cache).</summary>
    public int Generated { get; private set; }

    /// <summary>The teacher's answer to each example's (first) question, in order.</summary>
    public List<string> For(IReadOnlyList<ConversationExample> examples, int batchSize = 32)
    {
        var keys = examples.Select(Key).ToList();
        var missing = examples.Where((_, i) => !cache.ContainsKey(keys[i])).ToList();
        if (missing.Count > 0)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(cachePath))!);
            using var writer = new StreamWriter(cachePath, append: true, new UTF8Encoding(false));
            using var noGc = new Runtime.NoGcRegion();
            foreach (var chunk in missing.Chunk(batchSize))
            {
                noGc.Boundary();
                var answers = Evaluator.AnswerBatch(teacher, chunk, maxNewTokens);
                for (int i = 0; i < chunk.Length; i++)
                {
                    var key = Key(chunk[i]);
                    cache[key] = answers[i].Trim();
                    writer.WriteLine(new JsonObject { ["key"] = key, ["id"] = chunk[i].Id, ["answer"] = cache[key] }.ToJsonString());
                }
                writer.Flush();
                Generated += chunk.Length;
            }
        }
        return keys.Select(k => cache[k]).ToList();
    }

    /// <summary>
    /// The examples with their answer replaced by the teacher's (sequence-level KD). Only single-answer
    /// conversations: the teacher answers the question it is asked, not a history it did not write.
    /// </summary>
    public List<ConversationExample> Replace(IReadOnlyList<ConversationExample> examples)
    {
        foreach (var ex in examples)
            if (ex.Turns.Count(t => t.IsAssistant) != 1)
                throw new ArgumentException($"line {ex.LineNumber} ('{ex.Id}'): sequence-level KD replaces one answer per example; this conversation has {ex.Turns.Count(t => t.IsAssistant)}");
        var answers = For(examples);
        return examples.Select((ex, i) => WithAnswer(ex, answers[i])).ToList();
    }

    public static ConversationExample WithAnswer(ConversationExample ex, string answer) =>
        ex with { Turns = ex.Turns.Select(t => t.IsAssistant ? t with { Value = answer } : t).ToList() };

    string Key(ConversationExample ex) =>
        Hash(Encoding.UTF8.GetBytes($"{teacherId}\n{maxNewTokens}\n{ex.Id}\n{Path.GetFileName(ex.ImagePath)}\n{ex.Question}"));

    /// <summary>A hash of a model directory's files (weights, config, tokenizer): another teacher, another cache key.</summary>
    public static string Identity(string modelDir)
    {
        using var sha = SHA256.Create();
        foreach (var file in Directory.GetFiles(modelDir).Order(StringComparer.Ordinal))
        {
            var name = Encoding.UTF8.GetBytes(Path.GetFileName(file));
            sha.TransformBlock(name, 0, name.Length, null, 0);
            var bytes = File.ReadAllBytes(file);
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexString(sha.Hash!)[..16];
    }

    static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes))[..24];
}
