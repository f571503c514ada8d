using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tokenization;
using GenRecal.Training;

namespace GenRecal.Evaluation;

/// <summary>One model's side of a pair report.</summary>
public sealed record PairSide(string Name, string Tokenizer, int VocabSize, int Hidden, int Layers, int? ImageTokens,
                              double TokensPerChar, int OverLength, int AnswerCutOff, int UnknownTokens, int MissingVision, string Template);

/// <summary>
/// Preflight report on a teacher/student pair over a data file, before any training: what differs
/// (vocabularies, how the same texts are split, id order of shared token strings, image tokens, widths,
/// templates) and what would make training fail (answers cut off, images without a vision encoder,
/// over-long sequences, text outside a compact vocabulary) — as counts; and what GenRecal would cost against SFT
/// (<see cref="CostEstimate"/>, from the examples both models can train on, null where there are none).
/// </summary>
public sealed record PairReport(PairSide Teacher, PairSide Student, int Examples, double IdenticalBoundaryShare,
                                int SharedTokenStrings, double SameIdShare, double OrderAgreement)
{
    public bool HasBlockingProblems => new[] { Teacher, Student }.Any(s => s.AnswerCutOff > 0 || s.MissingVision > 0);

    public PairCost? Cost { get; init; }

    /// <param name="config">the training config the cost estimate assumes (steps, batch, stage-2 settings); default: the defaults</param>
    public static PairReport Build(PretrainedModel teacher, PretrainedModel student, IReadOnlyList<ConversationExample> examples, int maxLength, TrainingConfig? config = null)
    {
        var texts = examples.SelectMany(e => e.Turns.Select(t => t.Value.Replace("<image>", ""))).Where(t => t.Length > 0).ToList();
        long shared = 0, union = 0;
        foreach (var text in texts)
        {
            var a = Boundaries(teacher.Tokenizer, text);
            var b = Boundaries(student.Tokenizer, text);
            shared += a.Intersect(b).Count();
            union += a.Union(b).Count();
        }
        var (sharedStrings, sameId, order) = VocabularyOverlap(teacher.Tokenizer, student.Tokenizer, texts);
        var (teacherSide, teacherEncoded) = Side("teacher", teacher, examples, texts, maxLength);
        var (studentSide, studentEncoded) = Side("student", student, examples, texts, maxLength);
        config ??= new TrainingConfig();
        var lengths = Enumerable.Range(0, examples.Count).Where(i => teacherEncoded[i] is not null && studentEncoded[i] is not null)
            .Select(i => ExampleLengths.Of(studentEncoded[i]!, teacherEncoded[i]!, maxLength)).ToList();
        return new PairReport(teacherSide, studentSide, examples.Count, union == 0 ? 1 : (double)shared / union, sharedStrings, sameId, order)
        {
            // the store's pass covers every example the teacher can encode, whether or not the student can
            Cost = lengths.Count == 0 ? null : new PairCost(CostEstimate.Of(teacher.Config.Text, student.Config.Text, config, lengths), config, teacherEncoded.Count(e => e is not null)),
        };
    }

    /// <summary>Character offsets where a tokenization of <paramref name="text"/> puts token boundaries.</summary>
    public static HashSet<int> Boundaries(ModelTokenizer tok, string text)
    {
        var ids = tok.EncodeBaseText(text);
        var result = new HashSet<int>();
        for (int k = 1; k <= ids.Count; k++)
        {
            // prefix decoding keeps multi-byte characters whole; a boundary inside one is not a text boundary
            var prefix = tok.DecodeBase(ids.Take(k));
            if (text.StartsWith(prefix, StringComparison.Ordinal)) result.Add(prefix.Length);
        }
        return result;
    }

    static (int Shared, double SameId, double Order) VocabularyOverlap(ModelTokenizer t, ModelTokenizer s, List<string> texts)
    {
        Dictionary<string, int> Seen(ModelTokenizer tok)
        {
            var d = new Dictionary<string, int>();
            foreach (var text in texts)
                foreach (var id in tok.Encode(text)) d.TryAdd(tok.TokenText(id), id);
            return d;
        }
        var a = Seen(t);
        var b = Seen(s);
        var common = a.Keys.Where(b.ContainsKey).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (common.Count == 0) return (0, 0, 0);
        double sameId = common.Count(k => a[k] == b[k]) / (double)common.Count;
        long agree = 0, pairs = 0;
        for (int i = 0; i < common.Count && pairs < 200_000; i++)
            for (int j = i + 1; j < common.Count && pairs < 200_000; j++, pairs++)
                if (Math.Sign(a[common[i]] - a[common[j]]) == Math.Sign(b[common[i]] - b[common[j]])) agree++;
        return (common.Count, sameId, pairs == 0 ? 1 : (double)agree / pairs);
    }

    /// <summary>One side's figures, and each example's encoding where this model can train on it (null: no vision encoder
    /// for its image, or its answer starts beyond <paramref name="maxLength"/>).</summary>
    static (PairSide Side, EncodedChat?[] Encoded) Side(string name, PretrainedModel m, IReadOnlyList<ConversationExample> examples, List<string> texts, int maxLength)
    {
        long tokens = 0, chars = 0;
        int unknown = 0;
        foreach (var text in texts)
        {
            var (ids, unk) = m.Tokenizer.EncodeWithReport(text);
            tokens += ids.Length; chars += text.Length; unknown += unk;
        }
        int over = 0, cut = 0, missingVision = 0, images = 0;
        long imageTokens = 0;
        var encoded = new EncodedChat?[examples.Count];
        for (int i = 0; i < examples.Count; i++)
        {
            var ex = examples[i];
            if (ex.ImagePath is not null && m.Vlm is null) { missingVision++; continue; }
            int n = ex.ImagePath is null ? 0 : m.Vlm!.ImageTokensFor(ex.ImagePath);
            if (ex.ImagePath is not null) { images++; imageTokens += n; }
            var enc = ChatEncoder.EncodeConversation(m.Tokenizer, ex.Turns, n);
            if (enc.Ids.Length > maxLength) over++;
            if (enc.FirstAnswerStart >= maxLength) cut++;
            else encoded[i] = enc;
        }
        var c = m.Config.Text;
        var tpl = m.Tokenizer.Template;
        return (new PairSide(name, m.Tokenizer.BaseName + (m.Tokenizer.IsCompact ? " (compact)" : ""), m.Tokenizer.VocabSize, c.HiddenSize, c.NumHiddenLayers,
            m.Vlm is null ? null : images == 0 ? 0 : (int)Math.Round((double)imageTokens / images), chars == 0 ? 0 : (double)tokens / chars, over, cut, unknown, missingVision,
            (tpl.UserPrefix + "…" + tpl.EndOfTurn).Replace("\n", "\\n")), encoded);
    }

    public JsonObject ToJson()
    {
        JsonObject SideJson(PairSide s) => new()
        {
            ["tokenizer"] = s.Tokenizer, ["vocab_size"] = s.VocabSize, ["hidden_size"] = s.Hidden, ["layers"] = s.Layers,
            ["image_tokens"] = s.ImageTokens, ["tokens_per_char"] = Math.Round(s.TokensPerChar, 4), ["over_length"] = s.OverLength,
            ["answer_cut_off"] = s.AnswerCutOff, ["unknown_tokens"] = s.UnknownTokens, ["images_without_vision"] = s.MissingVision,
            ["chat_template"] = s.Template,
        };
        return new JsonObject
        {
            ["examples"] = Examples, ["teacher"] = SideJson(Teacher), ["student"] = SideJson(Student),
            ["identical_boundary_share"] = Math.Round(IdenticalBoundaryShare, 4), ["shared_token_strings"] = SharedTokenStrings,
            ["same_id_share"] = Math.Round(SameIdShare, 4), ["order_agreement"] = Math.Round(OrderAgreement, 4),
            ["blocking_problems"] = HasBlockingProblems,
            ["cost_estimate"] = Cost?.ToJson(),
        };
    }
}

/// <summary>The pair's cost estimate, the training config whose steps and stage-2 settings it assumes, and how many
/// examples the teacher pass would cover.</summary>
public sealed record PairCost(CostEstimate Estimate, TrainingConfig Config, int StoredExamples)
{
    public double? ArmRatio(TeacherWork teacher) => Estimate.ArmRatio(Config, StoredExamples, teacher);

    public JsonObject ToJson()
    {
        var e = Estimate;
        double? Round(double? v) => v is { } x ? Math.Round(x, 3) : null;
        return new JsonObject
        {
            ["what"] = "matmul FLOPs per example of the language models (vision encoders not counted), relative to a student SFT step",
            ["recalibrator_parameters"] = e.RecalibratorParameters,
            ["sft_step_gflop"] = Math.Round(e.Sft / 1e9, 6),
            ["stage1_step"] = Round(e.Stage1 / e.Sft),
            ["stage2_step"] = Round(e.Stage2 / e.Sft),
            ["stage2_regularizer"] = Round(e.Stage2Regularizer / e.Sft),
            ["teacher_pass"] = Round(e.TeacherPass / e.Sft),
            ["steps"] = new JsonObject { ["1"] = Config.StepsFor(1), ["2"] = Config.StepsFor(2), ["3"] = Config.StepsFor(3), ["batch"] = Config.BatchSize * Config.GradAccumulation },
            ["stored_examples"] = StoredExamples,
            // null where the config has no student steps
            ["arm_ratio_store_filled"] = Round(ArmRatio(TeacherWork.StoreFilled)),
            ["arm_ratio_store_reused"] = Round(ArmRatio(TeacherWork.StoreReused)),
            ["arm_ratio_live_teacher"] = Round(ArmRatio(TeacherWork.Live)),
        };
    }
}
