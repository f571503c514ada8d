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

    /// <summary>Proj-pre on teacher-space features [B, T, Dt] → [B, T, Ds].</summary>
    public Tensor Project(Tensor teacherFeatures) => proj_pre.forward(teacherFeatures);

    /// <param name="question">[B, Tq, Ds] question features in student width (z_qs, or Proj-pre(z_ql) for the regularizer)</param>
    /// <param name="questionLengths">real question length per row</param>
    /// <param name="questionPositions">[B, Tq] the question's own position ids (used when NPE is off)</param>
    /// <param name="answer">[B, Ta, Ds] Proj-pre of the teacher answer part</param>
    /// <param name="answerLengths">real answer length per row</param>
    /// <param name="answerPositions">[B, Ta] the answer's own (teacher) position ids (used when NPE is off)</param>
    /// <returns>r_al [B, Ta, Dt]: recalibrated answer features aligned with the teacher's answer positions</returns>
    public Tensor Forward(Tensor question, int[] questionLengths, Tensor questionPositions,
                          Tensor answer, int[] answerLengths, Tensor answerPositions)
    {
        using var scope = NewDisposeScope();
        int b = questionLengths.Length;
        long d = question.shape[2], ta = answer.shape[1];
        int total = Enumerable.Range(0, b).Max(i => questionLengths[i] + answerLengths[i]);
        var rows = new Tensor[b];
        var posRows = new Tensor[b];
        var mask = zeros(b, total, ScalarType.Int64);
        for (int i = 0; i < b; i++)
        {
            int q = questionLengths[i], a = answerLengths[i], pad = total - q - a;
            rows[i] = cat([question[i].narrow(0, 0, q), answer[i].narrow(0, 0, a), zeros(pad, d, dtype: question.dtype)], 0); // [L, Ds]
            posRows[i] = cat([questionPositions[i].narrow(0, 0, q), answerPositions[i].narrow(0, 0, a), zeros(pad, ScalarType.Int64)], 0);
            mask[i].narrow(0, 0, q + a).fill_(1);
        }
        var x = stack(rows);                                                   // [B, L, Ds]
        var positions = Config.NewPositions
            ? arange(0, total, ScalarType.Int64).unsqueeze(0).expand(b, total) // NPE: 0..L-1
            : stack(posRows);                                                   // [B, L]
        var attn = AttentionMask.Causal(b, total, 0, mask);
        var (cos, sin) = rotary.Compute(positions);
        for (int l = 0; l < layers.Count; l++) x = layers[l].Forward(x, cos, sin, attn, null, l);
        var r = norm.forward(proj_post.forward(x));                             // [B, L, Dt]
        var answerRows = new Tensor[b];
        for (int i = 0; i < b; i++)
        {
            int q = questionLengths[i], a = answerLengths[i];
            answerRows[i] = cat([r[i].narrow(0, q, a), zeros(ta - a, TeacherHidden, dtype: r.dtype)], 0); // [Ta, Dt]
        }
        return stack(answerRows).MoveToOuterDisposeScope();                     // [B, Ta, Dt]
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
