using System.Text.Json;
using GenRecal.Models;
using GenRecal.Modules;
using GenRecal.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Recalibration;

/// <summary>
/// The GenRecal Recalibrator (paper §3): Proj-pre (teacher width → student width), Rec-body (decoder
/// blocks with the student's block configuration, causal, its own RoPE over fresh positions), Proj-post
/// (student width → teacher width) and a LayerNorm. Forward runs [z_qs, Proj-pre(z_al)] as one causal
/// sequence per example and returns the answer part in the teacher's space, ready for the teacher's head.
/// Each side keeps its own lengths: rows are packed question-then-answer and right-padded.
/// </summary>
public sealed class Recalibrator : nn.Module
{
    public const string WeightsFileName = "recalibrator.safetensors";
    public const string ConfigFileName = "recalibrator_config.json";

    public readonly Linear proj_pre, proj_post;
    public readonly ModuleList<DecoderLayer> layers;
    public readonly LayerNorm norm;
    readonly RotaryEmbedding rotary;

    public Recalibrator(RecalibratorConfig config, LanguageModelConfig student, int teacherHidden) : base(nameof(Recalibrator))
    {
        Config = config;
        StudentBlock = student;
        TeacherHidden = teacherHidden;
        proj_pre = nn.Linear(teacherHidden, student.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumLayers).Select(_ => new DecoderLayer(student)).ToArray());
        proj_post = nn.Linear(student.HiddenSize, teacherHidden);
        norm = nn.LayerNorm(teacherHidden);
        rotary = new RotaryEmbedding(student.HeadDim, student.RopeTheta);
        RegisterComponents();
    }

    public RecalibratorConfig Config { get; }
    public LanguageModelConfig StudentBlock { get; }
    public int TeacherHidden { get; }

    /// <summary>Proj-pre on teacher-space features [B, T, Dt] → [B, T, Ds], in the Recalibrator's dtype (the teacher's
    /// features are float32; under bf16 mixed precision the Recalibrator computes in bf16).</summary>
    public Tensor Project(Tensor teacherFeatures) =>
        proj_pre.forward(teacherFeatures.dtype == proj_pre.weight!.dtype ? teacherFeatures : teacherFeatures.to(proj_pre.weight!.dtype));

    /// <param name="question">[B, Tq, Ds] question features in student width (z_qs, or Proj-pre(z_ql) for the regularizer)</param>
    /// <param name="questionLengths">real question length per row</param>
    /// <param name="questionPositions">[B, Tq] the question's own position ids (used when NPE is off)</param>
    /// <param name="answer">[B, Ta, Ds] Proj-pre of the teacher answer part</param>
    /// <param name="answerLengths">real answer length per row</param>
    /// <param name="answerPositions">[B, Ta] the answer's own (teacher) position ids (used when NPE is off)</param>
    /// <returns>r_al [B, Ta, Dt]: recalibrated answer features aligned with the teacher's answer positions (zero rows
    /// past each answer's length)</returns>
    /// <remarks>
    /// Rows are laid out [question left-padded to the longest | answer right-padded to the longest], so every answer
    /// starts at one column and the last block can run on the answer columns alone: only answer rows are scored, and
    /// the question rows of the last block would cost most of it (questions are ten times longer than answers here).
    /// That block reads the question's keys and values from a <see cref="KvCache"/> filled by <see cref="QuestionKeysValues"/>;
    /// each real token sees the same tokens at the same positions as in one packed causal sequence, so the result is
    /// that of running every block on every row (RecalibratorTests checks it against exactly that).
    /// </remarks>
    public Tensor Forward(Tensor question, int[] questionLengths, Tensor questionPositions,
                          Tensor answer, int[] answerLengths, Tensor answerPositions)
    {
        using var scope = NewDisposeScope();
        int b = questionLengths.Length;
        long d = question.shape[2], tq = question.shape[1], ta = answer.shape[1];
        int qMax = questionLengths.Max(), aMax = Math.Max(1, answerLengths.Max()), total = qMax + aMax;
        // one gather builds the layout: question rows, then answer rows, then a zero row for every padded slot
        var source = cat([question.reshape(-1, d), answer.reshape(-1, d), zeros(1, d, dtype: question.dtype)], 0);
        long zeroRow = source.shape[0] - 1;
        var index = new long[b * total];
        var mask = new long[b * total];
        var qOwn = Config.NewPositions ? null : questionPositions.to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var aOwn = Config.NewPositions ? null : answerPositions.to(ScalarType.Int64).contiguous().data<long>().ToArray();
        var positions = new long[b * total];
        for (int i = 0; i < b; i++)
        {
            int q = questionLengths[i], a = answerLengths[i], padLeft = qMax - q;
            for (int s = 0; s < total; s++)
            {
                int slot = i * total + s;
                bool inQuestion = s >= padLeft && s < qMax, inAnswer = s >= qMax && s - qMax < a;
                index[slot] = inQuestion ? i * tq + (s - padLeft) : inAnswer ? b * tq + i * ta + (s - qMax) : zeroRow;
                mask[slot] = inQuestion || inAnswer ? 1 : 0;
                // NPE: fresh positions 0..q+a-1 over the real tokens; otherwise each side's own
                positions[slot] = inQuestion ? (qOwn is null ? s - padLeft : qOwn[i * tq + (s - padLeft)])
                                : inAnswer ? (aOwn is null ? q + (s - qMax) : aOwn[i * ta + (s - qMax)]) : 0;
            }
        }
        var x = source.index_select(0, tensor(index)).view(b, total, d);      // [B, Q+A, Ds]
        var padding = tensor(mask).view(b, total);
        var (cos, sin) = rotary.Compute(tensor(positions).view(b, total), x.dtype); // [B, 1, Q+A, hd], in the activations' dtype
        int last = layers.Count - 1;
        if (last > 0)
        {
            var attn = AttentionMask.Causal(b, total, 0, padding, dtype: x.dtype);
            for (int l = 0; l < last; l++) x = layers[l].Forward(x, cos, sin, attn, null, l);
        }
        using var cache = new KvCache(layers.Count);
        var (k, v) = QuestionKeysValues(layers[last], x.narrow(1, 0, qMax), cos.narrow(2, 0, qMax), sin.narrow(2, 0, qMax));
        cache.Append(last, k, v);
        var answerMask = AttentionMask.Causal(b, aMax, qMax, padding, dtype: x.dtype); // [B, 1, A, Q+A]
        var xa = layers[last].Forward(x.narrow(1, qMax, aMax), cos.narrow(2, qMax, aMax), sin.narrow(2, qMax, aMax), answerMask, cache, last);
        var real = padding.narrow(1, qMax, aMax).unsqueeze(-1).to(xa.dtype);  // [B, A, 1]
        var r = norm.forward(proj_post.forward(xa)) * real;                   // [B, A, Dt]
        if (ta > aMax) r = nn.functional.pad(r, [0, 0, 0, ta - aMax]);
        else if (ta < aMax) r = r.narrow(1, 0, ta);
        return r.MoveToOuterDisposeScope();                                     // [B, Ta, Dt]
    }

    /// <summary>The question's keys and values [B, KvH, Q, hd] in <paramref name="layer"/>, computed as its attention
    /// computes them (input norm, k/v projections, RoPE), without the question's outputs, which nothing reads.</summary>
    (Tensor K, Tensor V) QuestionKeysValues(DecoderLayer layer, Tensor xq, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long b = xq.shape[0], q = xq.shape[1];
        int kvHeads = StudentBlock.NumKeyValueHeads, headDim = StudentBlock.HeadDim;
        var h = layer.input_layernorm.forward(xq);
        var k = layer.self_attn.k_proj.forward(h).view(b, q, kvHeads, headDim).transpose(1, 2);
        var v = layer.self_attn.v_proj.forward(h).view(b, q, kvHeads, headDim).transpose(1, 2);
        return (RotaryEmbedding.Apply(k, cos, sin).MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["teacher_hidden"] = TeacherHidden.ToString() };
        Safetensors.Save(Path.Combine(dir, WeightsFileName), Pretrained.StateDict(this), meta);
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["recalibrator"] = JsonSerializer.SerializeToNode(Config, RecalibratorConfig.Json),
            ["teacher_hidden_size"] = TeacherHidden,
            ["student_block"] = StudentBlockJson(),
        };
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFileName), json.ToJsonString(RecalibratorConfig.Json));
    }

    System.Text.Json.Nodes.JsonObject StudentBlockJson()
    {
        var j = new System.Text.Json.Nodes.JsonObject();
        StudentBlock.WriteTo(j);
        return j;
    }

    public static Recalibrator Load(string dir)
    {
        var path = Path.Combine(dir, ConfigFileName);
        var cj = ConfigJson.Parse(path);
        RecalibratorConfig config;
        try
        {
            config = cj.Json["recalibrator"].Deserialize<RecalibratorConfig>(RecalibratorConfig.Json)
                ?? throw new InvalidDataException($"{path}: missing 'recalibrator'");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid 'recalibrator' section ({e.Message})");
        }
        if (config.NumLayers < 1) throw new InvalidDataException($"{path}: recalibrator.num_layers must be at least 1, found {config.NumLayers}");
        var block = LanguageModelConfig.Read(cj.Section("student_block") ?? throw new InvalidDataException($"{path}: missing 'student_block'"));
        var rec = new Recalibrator(config, block, cj.Required<int>("teacher_hidden_size"));
        Pretrained.LoadWeights(rec, dir, WeightsFileName);
        return rec;
    }
}
