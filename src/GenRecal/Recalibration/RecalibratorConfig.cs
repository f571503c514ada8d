using System.Text.Json;
using System.Text.Json.Serialization;

namespace GenRecal.Recalibration;

/// <summary>What the Recalibrator receives as the teacher's answer part.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AnswerSource>))]
public enum AnswerSource
{
    /// <summary>z_al, the teacher's last-layer answer features (the paper).</summary>
    TeacherHidden,
    /// <summary>The teacher's answer input embeddings: z_al is withheld, so the answer must be
    /// predicted from the student's question features (docs/METHOD.md, "The project's default").</summary>
    TeacherEmbeddings,
}

/// <summary>Recalibrator settings; defaults are the paper's (GenRecal §3, Fig. 3) except the answer source.</summary>
public sealed record RecalibratorConfig
{
    /// <summary>Decoder blocks in Rec-body (paper: 2; ablation 1/2/5/20).</summary>
    [JsonPropertyName("num_layers")] public int NumLayers { get; init; } = 2;
    /// <summary>Fresh position ids 0..L-1 over the concatenated sequence (NPE); off keeps each side's own positions.</summary>
    [JsonPropertyName("new_positions")] public bool NewPositions { get; init; } = true;
    /// <summary>Default TeacherEmbeddings, the best-measured form (docs/RESULTS.md): with the paper's TeacherHidden the
    /// Recalibrator copies z_al and ignores the student. "TeacherHidden" selects the paper's form.</summary>
    [JsonPropertyName("answer_source")] public AnswerSource AnswerSource { get; init; } = AnswerSource.TeacherEmbeddings;

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
}
