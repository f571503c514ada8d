using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using GenRecal.Baselines;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Runtime;
using GenRecal.Tensors;
using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>How the teacher's answer distributions are stored: whole up to <paramref name="FullVocabularyLimit"/> ids,
/// above it as the <paramref name="TopK"/> most likely ids plus the remaining mass (<see cref="TeacherDistribution"/>).</summary>
public sealed record TeacherFeatureForm(int FullVocabularyLimit = 4096, int TopK = 64);

/// <summary>
/// The frozen teacher's part of every GenRecal step (<see cref="TeacherFeatures"/>), computed once in one batched pass
/// and read back a batch at a time, instead of a teacher forward per step: stages 1-2 of every epoch, arm, variant and
/// seed that share a teacher and data share it. The teacher is frozen and in eval mode (no dropout), so stored
/// features equal recomputed ones up to float rounding.
/// <para>Layout: CACHE/&lt;key&gt;/, the key a hash of the teacher's identity (a hash of its files, as
/// <see cref="TeacherAnswers.Identity"/>), the data file's SHA-256, max_length, the KL temperature, the
/// distribution's form and the teacher's compute dtype when not float32, so another teacher, data file or setting gets
/// another folder and never reads stale features.
/// store.json says what the key holds. Shards are safetensors files covering fixed ranges of data lines,
/// lines-FFFFFFFFF-LLLLLLLLL.safetensors for lines F..L (<see cref="ShardLines"/> each); a shard holds every example of
/// its lines the teacher can encode, tensors named L&lt;line&gt;/question [Lq, Dt], /answer_embeds and /answer_hidden
/// [La, Dt], /logprobs [n, V or k] (n = scored answer rows) and, in the top-k form, /topk_ids [n, k] and /tail [n];
/// its metadata maps L&lt;line&gt; to a hash of the example's id and image bytes, checked before the shard is reused.
/// Shards are written whole through <see cref="AtomicFile"/> and depend on nothing but their own lines, so the pass
/// splits across processes by shard (<see cref="Fill"/>'s part of parts): each process writes its shards, any may
/// read them all, and an interrupted pass keeps the shards it finished.</para>
/// </summary>
public sealed class TeacherFeatureStore : IDisposable
{
    public const int ShardLines = 256;
    const string Format = "genrecal-teacher-features/1";
    /// <summary>Examples per batch of the teacher pass (no gradients are kept, so larger than a training batch).</summary>
    const int PassBatchSize = 32;

    readonly PretrainedModel teacher;
    readonly double temperature;
    readonly int? topK;
    readonly Dictionary<int, SafetensorsReader> readers = new();

    public TeacherFeatureStore(string cacheRoot, PretrainedModel teacher, string dataPath, TrainingConfig config, TeacherFeatureForm? form = null)
    {
        form ??= new TeacherFeatureForm();
        this.teacher = teacher;
        temperature = config.KlTemperature;
        int vocab = teacher.Config.Text.VocabSize;
        topK = vocab > form.FullVocabularyLimit ? form.TopK : null;
        var teacherId = TeacherAnswers.Identity(teacher.Directory);
        var dataHash = TeacherAnswers.FileHash(dataPath);
        var formName = topK is { } k ? $"top{k}" : "full";
        var t = temperature.ToString("R", CultureInfo.InvariantCulture);
        // a teacher computing in bf16 (mixed precision, BF16 checkpoint) gives other features: its own key (float32 keys unchanged)
        var computeDtype = teacher.Model.Dtype;
        var dtypeName = computeDtype switch { ScalarType.Float32 => MixedPrecision.Fp32, ScalarType.BFloat16 => MixedPrecision.Bf16, _ => computeDtype.ToString() };
        var dtypeKey = computeDtype == ScalarType.Float32 ? "" : $"\n{dtypeName}";
        Dir = Path.Combine(cacheRoot, Hash($"{Format}\n{teacherId}\n{dataHash}\n{config.MaxLength}\n{t}\n{formName}{dtypeKey}"));
        var description = Path.Combine(Dir, "store.json");
        if (!File.Exists(description))
            AtomicFile.WriteAllText(description, new JsonObject
            {
                ["format"] = Format, ["teacher"] = Path.GetFullPath(teacher.Directory), ["teacher_identity"] = teacherId,
                ["data"] = Path.GetFullPath(dataPath), ["data_sha256"] = dataHash, ["max_length"] = config.MaxLength,
                ["temperature"] = temperature, ["form"] = formName, ["vocab_size"] = vocab, ["shard_lines"] = ShardLines,
                ["teacher_dtype"] = dtypeName,
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The store's folder (CACHE/&lt;key&gt;).</summary>
    public string Dir { get; }
    /// <summary>Whether distributions are stored as top-k + tail (large vocabularies) rather than whole.</summary>
    public bool IsTopK => topK is not null;
    /// <summary>Examples this instance ran the teacher on (0 when every shard was reused).</summary>
    public int Computed { get; private set; }
    /// <summary>Teacher tokens and seconds of this instance's pass, for throughput figures.</summary>
    public long PassTokens { get; private set; }
    public double PassSeconds { get; private set; }

    public static int ShardOf(ConversationExample ex) => (ex.LineNumber - 1) / ShardLines;

    string ShardPath(int shard) => Path.Combine(Dir, $"lines-{shard * ShardLines + 1:D9}-{(shard + 1) * ShardLines:D9}.safetensors");

    static string Prefix(ConversationExample ex) => $"L{ex.LineNumber}";

    /// <summary>The example's id and image bytes: a regenerated image under the same name is another example.</summary>
    static string ExampleKey(ConversationExample ex) =>
        Hash($"{ex.Id}\n{(ex.ImagePath is null ? "" : TeacherAnswers.FileHash(ex.ImagePath))}");

    /// <summary>
    /// Computes every shard of <paramref name="examples"/> (all the examples of the data file the teacher can encode, so
    /// runs whose students accept different lines share shards) that is missing or stale, taking the shards whose index
    /// is <paramref name="part"/> modulo <paramref name="parts"/>: parallel processes each take one part. Returns the
    /// number of shards in this part (computed or found current).
    /// </summary>
    public int Fill(IReadOnlyList<ConversationExample> examples, Collator teacherCollator, int part = 0, int parts = 1)
    {
        if (parts < 1 || part < 0 || part >= parts) throw new ArgumentException($"part {part} of {parts}: need 0 ≤ part < parts");
        var clock = Stopwatch.StartNew();
        teacher.Model.eval();
        using var noGc = new NoGcRegion();
        var shards = examples.GroupBy(ShardOf).Where(g => g.Key % parts == part).OrderBy(g => g.Key).ToList();
        foreach (var shard in shards)
        {
            var keys = shard.ToDictionary(Prefix, ExampleKey);
            if (Current(shard.Key, keys)) continue;
            readers.Remove(shard.Key, out var stale);
            stale?.Dispose();
            var tensors = new Dictionary<string, Tensor>();
            try
            {
                // longest first and in fixed chunks: little padding, and the same batches in every process
                var ordered = shard.OrderByDescending(e => teacherCollator.Encode(e).Ids.Length).ThenBy(e => e.LineNumber).ToList();
                for (int i = 0; i < ordered.Count; i += PassBatchSize)
                {
                    noGc.Boundary();
                    Compute(ordered.Skip(i).Take(PassBatchSize).ToList(), teacherCollator, tensors);
                }
                var metadata = new Dictionary<string, string>(keys) { ["format"] = Format, ["form"] = topK is { } k ? $"top{k}" : "full" };
                Safetensors.Save(ShardPath(shard.Key), tensors, metadata);
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
            Computed += shard.Count();
        }
        PassSeconds += clock.Elapsed.TotalSeconds;
        return shards.Count;
    }

    /// <summary>Whether the shard exists and holds these examples, unchanged. A file that is not a valid safetensors file
    /// is an error naming it (shards are written atomically, so that is damage, not an interrupted pass).</summary>
    bool Current(int shard, Dictionary<string, string> keys)
    {
        var path = ShardPath(shard);
        if (!File.Exists(path)) return false;
        using var reader = new SafetensorsReader(path);
        if (reader.Metadata.GetValueOrDefault("format") != Format)
            throw new InvalidDataException($"{path}: not a teacher-feature shard of format {Format}");
        return keys.All(kv => reader.Metadata.GetValueOrDefault(kv.Key) == kv.Value);
    }

    /// <summary>One batch of the pass: the teacher's features of each example, cut to its own lengths.</summary>
    void Compute(List<ConversationExample> chunk, Collator collator, Dictionary<string, Tensor> into)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var batch = collator.Collate(chunk);
        PassTokens += batch.Tokens;
        var split = GenRecalLossStep.SplitOf(batch);
        var (embeds, zl) = GenRecalLossStep.EmbedsAndHidden(teacher.Model, batch);                   // [B, Tl, Dt]
        var zal = GenRecalLossStep.Segments(zl, split.AnswerStarts, split.AnswerLengths);            // [B, La, Dt]
        var (rows, _) = GenRecalLossStep.ScoredRows(batch, split);                                   // [N]
        using var dist = TeacherDistribution.FromLogits(teacher.Model.Head(zal.reshape(-1, zal.shape[2]).index_select(0, rows)), temperature, topK);
        long width = zal.shape[1];
        var owner = rows.data<long>().Select(r => (int)(r / width)).ToArray();                     // example of each scored row
        int first = 0;
        for (int i = 0; i < chunk.Count; i++)
        {
            int n = owner.Skip(first).TakeWhile(o => o == i).Count();
            var p = Prefix(chunk[i]);
            Keep(into, $"{p}/question", zl[i].narrow(0, 0, split.QuestionLengths[i]));
            Keep(into, $"{p}/answer_hidden", zl[i].narrow(0, split.AnswerStarts[i], split.AnswerLengths[i]));
            Keep(into, $"{p}/answer_embeds", embeds[i].narrow(0, split.AnswerStarts[i], split.AnswerLengths[i]));
            Keep(into, $"{p}/logprobs", dist.LogProbs.narrow(0, first, n));
            if (dist.IsTopK)
            {
                Keep(into, $"{p}/topk_ids", dist.Ids!.narrow(0, first, n).to(ScalarType.Int32));
                Keep(into, $"{p}/tail", dist.TailLogMass!.narrow(0, first, n));
            }
            first += n;
        }
    }

    static void Keep(Dictionary<string, Tensor> into, string name, Tensor t)
    {
        var c = t.to(t.dtype == ScalarType.Int32 ? ScalarType.Int32 : ScalarType.Float32).contiguous().clone();
        c.DetachFromDisposeScope();
        into[name] = c;
    }

    /// <summary>
    /// The stored features of a training batch: <paramref name="examples"/> in batch order and the teacher's batch of
    /// them (for the lengths each stored tensor must have). Padded as <see cref="TeacherFeatures.Compute"/> pads.
    /// </summary>
    public TeacherFeatures Batch(IReadOnlyList<ConversationExample> examples, ModelBatch teacherBatch, AnswerSource source)
    {
        using var scope = NewDisposeScope();
        var split = GenRecalLossStep.SplitOf(teacherBatch);
        var questions = new Tensor[examples.Count];
        var answers = new Tensor[examples.Count];
        var dists = new TeacherDistribution[examples.Count];
        for (int i = 0; i < examples.Count; i++)
        {
            var reader = Reader(examples[i]);
            var p = Prefix(examples[i]);
            questions[i] = Checked(reader, $"{p}/question", split.QuestionLengths[i]);
            answers[i] = Checked(reader, $"{p}/{(source == AnswerSource.TeacherHidden ? "answer_hidden" : "answer_embeds")}", split.AnswerLengths[i]);
            var lp = reader.Read($"{p}/logprobs");
            dists[i] = topK is null ? TeacherDistribution.Full(lp)
                : TeacherDistribution.TopK(Checked(reader, $"{p}/topk_ids", lp.shape[0]), lp, Checked(reader, $"{p}/tail", lp.shape[0]));
        }
        var question = Padded(questions);
        var answer = Padded(answers);
        var targets = TeacherDistribution.Concat(dists);
        targets.LogProbs.MoveToOuterDisposeScope();
        targets.Ids?.MoveToOuterDisposeScope();
        targets.TailLogMass?.MoveToOuterDisposeScope();
        return new TeacherFeatures(question.MoveToOuterDisposeScope(), answer.MoveToOuterDisposeScope(), targets);
    }

    SafetensorsReader Reader(ConversationExample ex)
    {
        int shard = ShardOf(ex);
        if (!readers.TryGetValue(shard, out var reader))
        {
            var path = ShardPath(shard);
            if (!File.Exists(path)) throw new InvalidOperationException($"{path}: the teacher-feature shard of line {ex.LineNumber} was not filled");
            readers[shard] = reader = new SafetensorsReader(path);
        }
        if (!reader.Metadata.ContainsKey(Prefix(ex)))
            throw new InvalidOperationException($"{reader.Path}: holds no features for line {ex.LineNumber} ('{ex.Id}'); the store was not filled with it");
        return reader;
    }

    /// <summary>A stored tensor whose first dimension must be <paramref name="rows"/> (what the batch being trained has).</summary>
    static Tensor Checked(SafetensorsReader reader, string name, long rows)
    {
        var t = reader.Read(name);
        if (t.shape.Length == 0 || t.shape[0] != rows)
            throw new InvalidDataException($"{reader.Path}: '{name}' has shape [{string.Join(", ", t.shape)}], the batch needs {rows} rows");
        return t;
    }

    /// <summary>[L_i, D] pieces right-padded with zeros to the longest (at least 1) and stacked, [B, L, D].</summary>
    static Tensor Padded(Tensor[] pieces)
    {
        long max = Math.Max(1, pieces.Max(p => p.shape[0]));
        return stack(pieces.Select(p => nn.functional.pad(p, [0, 0, 0, max - p.shape[0]])).ToArray());
    }

    static string Hash(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..24];

    public void Dispose()
    {
        foreach (var r in readers.Values) r.Dispose();
        readers.Clear();
    }
}
