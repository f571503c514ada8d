using System.Text.Json.Nodes;

namespace GenRecal.Models;

/// <summary>
/// The decoder-only language model of the Qwen2 / LLaMA family, with HuggingFace's config.json names.
/// Qwen2 has q/k/v biases (no key for it in HF: implied by model_type), LLaMA has `attention_bias`.
/// </summary>
public sealed record LanguageModelConfig
{
    public string ModelType { get; init; } = "qwen2";
    public int VocabSize { get; init; }
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int HeadDim { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; } = true;
    /// <summary>Qwen2-VL's M-RoPE: rotary channels split among temporal, height and width positions; null for 1-D rope.</summary>
    public int[]? MRopeSection { get; init; }
    /// <summary>rope_scaling "dynamic" (NTK): plain rotary positions up to max_position_embeddings, rescaled beyond it;
    /// only the part up to the limit is implemented, so longer inputs are refused.</summary>
    public bool DynamicRope { get; init; }

    public static LanguageModelConfig FromJson(JsonObject json, string file) => Read(new ConfigJson(json, file));

    /// <param name="mrope">true where the family implements M-RoPE (Qwen2-VL's text model)</param>
    /// <param name="internLm2">true where the family maps InternLM2's packed checkpoint names (InternVL)</param>
    internal static LanguageModelConfig Read(ConfigJson j, bool mrope = false, bool internLm2 = false)
    {
        string type = j.Optional<string>("model_type") ?? "qwen2";
        string[] types = mrope ? ["qwen2_vl", "qwen2_5_vl", "qwen2_vl_text", "qwen2_5_vl_text"] : internLm2 ? ["qwen2", "llama", "internlm2"] : ["qwen2", "llama"];
        if (!types.Contains(type))
            throw j.Invalid("model_type", $"is '{type}'; supported: {string.Join(", ", types)}");
        int heads = j.Required<int>("num_attention_heads");
        int hidden = j.Required<int>("hidden_size");
        int[]? mropeSection = mrope ? MRope(j) : null;
        RefuseUnimplemented(j, mrope);
        // transformers >= 5 writes rope_theta inside rope_parameters; older versions at the top level.
        double theta = j.Section("rope_parameters")?.Optional<double?>("rope_theta") ?? j.Optional<double?>("rope_theta") ?? 10000;
        var config = new LanguageModelConfig
        {
            ModelType = type,
            VocabSize = j.Required<int>("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = j.Required<int>("intermediate_size"),
            NumHiddenLayers = j.Required<int>("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = j.Optional<int?>("num_key_value_heads") ?? heads,
            HeadDim = j.Optional<int?>("head_dim") ?? hidden / Math.Max(heads, 1),
            RmsNormEps = j.Optional("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            MaxPositionEmbeddings = j.Optional("max_position_embeddings", 2048),
            TieWordEmbeddings = j.Optional("tie_word_embeddings", false),
            // InternLM2 names the q/k/v/o bias switch "bias"
            AttentionBias = j.Optional<bool?>("attention_bias") ?? (type == "internlm2" ? j.Optional("bias", false) : type != "llama"),
            MRopeSection = mropeSection,
            DynamicRope = new[] { "rope_scaling", "rope_parameters" }.Any(k => j.Section(k) is { } r && (r.Optional<string>("rope_type") ?? r.Optional<string>("type")) == "dynamic"),
        };
        config.Validate(j.File);
        return config;
    }

    /// <summary>Settings that change the numbers and are not implemented are refused by name, never ignored.</summary>
    static void RefuseUnimplemented(ConfigJson j, bool mrope)
    {
        foreach (var key in new[] { "rope_scaling", "rope_parameters" })
            if (j.Section(key) is { } rope && (rope.Optional<string>("rope_type") ?? rope.Optional<string>("type")) is { } ropeType
                && ropeType is not ("default" or "dynamic") && !(mrope && ropeType == "mrope"))
                throw j.Invalid(key, $"has rope type '{ropeType}', which is not implemented (only default rotary positions, dynamic within max_position_embeddings{(mrope ? ", mrope" : "")})");
        if (j.Optional<string>("hidden_act") is { } act && act != "silu")
            throw j.Invalid("hidden_act", $"is '{act}'; only silu (SwiGLU) is implemented");
        if (j.Optional<bool?>("use_sliding_window") == true)
            throw j.Invalid("use_sliding_window", "is true; sliding-window attention is not implemented");
        if (j.Optional<bool?>("mlp_bias") == true)
            throw j.Invalid("mlp_bias", "is true; MLP biases are not implemented");
    }

    /// <summary>The mrope_section of a Qwen2-VL text config (in rope_scaling, or transformers 5's rope_parameters).</summary>
    static int[] MRope(ConfigJson j)
    {
        foreach (var key in new[] { "rope_scaling", "rope_parameters" })
            if (j.Section(key) is { } rope && rope.Json["mrope_section"] is System.Text.Json.Nodes.JsonArray a)
                return a.Select(n => n is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<int>(out var i) ? i
                    : throw j.Invalid(key, $"mrope_section must be integers, found {ConfigJson.Show(a)}")).ToArray();
        throw new InvalidDataException($"{j.File}: missing rope_scaling.mrope_section (Qwen2-VL's M-RoPE split)");
    }

    public void Validate(string file)
    {
        void Positive(string key, int v) { if (v <= 0) throw new InvalidDataException($"{file}: key '{key}' must be positive, found {v}"); }
        Positive("vocab_size", VocabSize); Positive("hidden_size", HiddenSize); Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers); Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads); Positive("head_dim", HeadDim);
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new InvalidDataException($"{file}: num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads})");
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (!double.IsFinite(RmsNormEps) || RmsNormEps <= 0) throw new InvalidDataException($"{file}: key 'rms_norm_eps' must be positive, found {RmsNormEps}");
        if (!double.IsFinite(RopeTheta) || RopeTheta <= 0) throw new InvalidDataException($"{file}: key 'rope_theta' must be positive, found {RopeTheta}");
        if (HeadDim % 2 != 0) throw new InvalidDataException($"{file}: head_dim ({HeadDim}) must be even for rotary embeddings");
        if (MRopeSection is { } m && (m.Length != 3 || m.Any(x => x <= 0) || m.Sum() * 2 != HeadDim))
            throw new InvalidDataException($"{file}: mrope_section [{string.Join(", ", m)}] must be 3 positive parts summing to head_dim / 2 = {HeadDim / 2}");
    }

    /// <summary>Writes the HF keys (the text-model part of config.json).</summary>
    public void WriteTo(JsonObject json)
    {
        json["model_type"] = ModelType;
        json["architectures"] = new JsonArray(ModelType == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM");
        json["vocab_size"] = VocabSize;
        json["hidden_size"] = HiddenSize;
        json["intermediate_size"] = IntermediateSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["num_key_value_heads"] = NumKeyValueHeads;
        json["head_dim"] = HeadDim;
        json["hidden_act"] = "silu";
        json["rms_norm_eps"] = RmsNormEps;
        json["rope_theta"] = RopeTheta;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["tie_word_embeddings"] = TieWordEmbeddings;
        json["attention_bias"] = AttentionBias;
        json["torch_dtype"] = "float32";
    }
}
