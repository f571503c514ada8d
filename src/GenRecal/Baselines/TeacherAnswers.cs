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

    /// <summary>
    /// The teacher's answer to each example's (first) question, in order. Batches are always the same fixed chunks of
    /// the full list (a chunk with any answer missing is generated whole), so a run interrupted mid-way and resumed
    /// batches, pads and so decodes exactly as an uninterrupted one.
    /// </summary>
    public List<string> For(IReadOnlyList<ConversationExample> examples, int batchSize = 32)
    {
        var keys = examples.Select(Key).ToList();
        var chunks = Enumerable.Range(0, (examples.Count + batchSize - 1) / batchSize)
            .Where(c => keys.Skip(c * batchSize).Take(batchSize).Any(k => !cache.ContainsKey(k))).ToList();
        if (chunks.Count > 0)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(cachePath))!);
            using var writer = new StreamWriter(cachePath, append: true, new UTF8Encoding(false));
            using var noGc = new Runtime.NoGcRegion();
            foreach (var c in chunks)
            {
                noGc.Boundary();
                var chunk = examples.Skip(c * batchSize).Take(batchSize).ToList();
                var answers = Evaluator.AnswerBatch(teacher, chunk, maxNewTokens);
                for (int i = 0; i < chunk.Count; i++)
                {
                    var key = keys[c * batchSize + i];
                    cache[key] = answers[i].Trim();
                    writer.WriteLine(new JsonObject { ["key"] = key, ["id"] = chunk[i].Id, ["answer"] = cache[key] }.ToJsonString());
                }
                writer.Flush();
                Generated += chunk.Count;
            }
        }
        return keys.Select(k => cache[k]).ToList();
    }

    /// <summary>
    /// The examples with their answer replaced by the teacher's (sequence-level KD), leaving out those the teacher
    /// answered with nothing (no target to learn; <see cref="Silent"/> counts them). Only single-answer conversations:
    /// the teacher answers the question it is asked, not a history it did not write.
    /// </summary>
    public List<ConversationExample> Replace(IReadOnlyList<ConversationExample> examples)
    {
        foreach (var ex in examples)
            if (ex.Turns.Count(t => t.IsAssistant) != 1)
                throw new ArgumentException($"line {ex.LineNumber} ('{ex.Id}'): sequence-level KD replaces one answer per example; this conversation has {ex.Turns.Count(t => t.IsAssistant)}");
        var answers = For(examples);
        Silent = answers.Count(string.IsNullOrWhiteSpace);
        return examples.Select((ex, i) => (ex, a: answers[i])).Where(p => !string.IsNullOrWhiteSpace(p.a)).Select(p => WithAnswer(p.ex, p.a)).ToList();
    }

    /// <summary>Examples the last <see cref="Replace"/> left out because the teacher's answer was empty.</summary>
    public int Silent { get; private set; }

    public static ConversationExample WithAnswer(ConversationExample ex, string answer) =>
        ex with { Turns = ex.Turns.Select(t => t.IsAssistant ? t with { Value = answer } : t).ToList() };

    /// <summary>The teacher, the generation length, the example's id and question, and the image's bytes: a regenerated
    /// data set whose ids and file names repeat but whose pictures differ gets new answers.</summary>
    string Key(ConversationExample ex) =>
        Hash(Encoding.UTF8.GetBytes($"{teacherId}\n{maxNewTokens}\n{ex.Id}\n{(ex.ImagePath is null ? "" : FileHash(ex.ImagePath))}\n{ex.Question}"));

    /// <summary>A hash of a model directory's files (weights, config, tokenizer), streamed (real shards are several
    /// gigabytes): another teacher, another cache key.</summary>
    public static string Identity(string modelDir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.GetFiles(modelDir).Order(StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
            sha.AppendData(Convert.FromHexString(FileHash(file)));
        }
        return Convert.ToHexString(sha.GetHashAndReset())[..16];
    }

    /// <summary>SHA-256 of a file's bytes, streamed, in hex.</summary>
    public static string FileHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes))[..24];
}
