using System.Text.Json.Nodes;

namespace GenRecal.Tokenization;

/// <summary>
/// How a model lays out a conversation: an optional system block, role prefixes, the end-of-turn marker, and the
/// image placeholder that is replaced by the model's own image block (start token, context token × the image's
/// token count, end token). Default: Qwen2's ChatML with no system block, the placeholder its own context token.
/// </summary>
public sealed record ChatTemplate
{
    /// <summary>Text before the first turn (a system message with its markers), empty for none.</summary>
    public string SystemPrefix { get; init; } = "";
    public string UserPrefix { get; init; } = "<|im_start|>user\n";
    public string AssistantPrefix { get; init; } = "<|im_start|>assistant\n";
    public string EndOfTurn { get; init; } = "<|im_end|>";
    public string TurnSeparator { get; init; } = "\n";
    /// <summary>What the user writes where the image goes (LLaVA data, the generate prompt).</summary>
    public string ImagePlaceholder { get; init; } = "<image>";
    /// <summary>The token each image-feature position holds (InternVL: &lt;IMG_CONTEXT&gt;).</summary>
    public string ImageContext { get; init; } = "<image>";
    public string ImageStart { get; init; } = "";
    public string ImageEnd { get; init; } = "";
    /// <summary>What follows an image block put before a question that has no placeholder ("\n" for InternVL's chat(),
    /// nothing for Qwen2-VL's chat template).</summary>
    public string ImageSeparator { get; init; } = "\n";
    /// <summary>Whether a user turn's text is trimmed of surrounding whitespace (LLaMA-3's templates write
    /// <c>message['content'] | trim</c>). Assistant answers are always trimmed by <see cref="ChatEncoder"/>.</summary>
    public bool TrimUser { get; init; }

    public static ChatTemplate ChatML { get; } = new();

    /// <summary>LLaMA-3 style headers, for a pair whose two models format turns differently.</summary>
    public static ChatTemplate Llama3 { get; } = new()
    {
        UserPrefix = "<|start_header_id|>user<|end_header_id|>\n\n",
        AssistantPrefix = "<|start_header_id|>assistant<|end_header_id|>\n\n",
        EndOfTurn = "<|eot_id|>",
        TurnSeparator = "",
    };

    /// <summary>The special-token strings the template needs in the vocabulary.</summary>
    public IEnumerable<string> SpecialTokens() =>
        TurnTokens().Concat(new[] { ImageContext, ImageStart, ImageEnd }.Where(s => s.Length > 0)).Distinct();

    /// <summary>The special-token strings the turns need (system block, role prefixes, end of turn), images aside.</summary>
    public IEnumerable<string> TurnTokens() =>
        new[] { SystemPrefix, UserPrefix, AssistantPrefix }.SelectMany(SpecialTokenPattern.Find)
            .Concat(new[] { EndOfTurn }.Where(s => s.Length > 0)).Distinct();

    /// <summary>The text that stands for one image of <paramref name="contextTokens"/> feature positions.</summary>
    public string ImageBlock(int contextTokens) =>
        ImageStart + string.Concat(Enumerable.Repeat(ImageContext, contextTokens)) + ImageEnd;

    /// <summary>The user's text with its first image placeholder replaced by the image block (as InternVL's chat() does:
    /// a question without the placeholder gets it on a line of its own first). No image: the text as it is.</summary>
    public string WithImage(string content, int contextTokens)
    {
        if (contextTokens == 0) return content;
        int at = content.IndexOf(ImagePlaceholder, StringComparison.Ordinal);
        if (at < 0) return ImageBlock(contextTokens) + ImageSeparator + content;
        return content[..at] + ImageBlock(contextTokens) + content[(at + ImagePlaceholder.Length)..];
    }

    public string FormatUser(string content) => UserPrefix + (TrimUser ? content.Trim() : content) + EndOfTurn + TurnSeparator;
    public string FormatAssistantStart() => AssistantPrefix;
    public string FormatAssistantEnd() => EndOfTurn + TurnSeparator;

    public JsonObject ToJson() => new()
    {
        ["system_prefix"] = SystemPrefix,
        ["user_prefix"] = UserPrefix, ["assistant_prefix"] = AssistantPrefix, ["end_of_turn"] = EndOfTurn,
        ["turn_separator"] = TurnSeparator, ["image_placeholder"] = ImagePlaceholder,
        ["image_context"] = ImageContext, ["image_start"] = ImageStart, ["image_end"] = ImageEnd, ["image_separator"] = ImageSeparator,
        ["trim_user"] = TrimUser,
    };

    public static ChatTemplate FromJson(JsonObject? j) => j is null ? ChatML : new ChatTemplate
    {
        SystemPrefix = j["system_prefix"]?.GetValue<string>() ?? ChatML.SystemPrefix,
        UserPrefix = j["user_prefix"]?.GetValue<string>() ?? ChatML.UserPrefix,
        AssistantPrefix = j["assistant_prefix"]?.GetValue<string>() ?? ChatML.AssistantPrefix,
        EndOfTurn = j["end_of_turn"]?.GetValue<string>() ?? ChatML.EndOfTurn,
        TurnSeparator = j["turn_separator"]?.GetValue<string>() ?? ChatML.TurnSeparator,
        ImagePlaceholder = j["image_placeholder"]?.GetValue<string>() ?? ChatML.ImagePlaceholder,
        // files written before these keys existed used the placeholder as the context token
        ImageContext = j["image_context"]?.GetValue<string>() ?? j["image_placeholder"]?.GetValue<string>() ?? ChatML.ImageContext,
        ImageStart = j["image_start"]?.GetValue<string>() ?? ChatML.ImageStart,
        ImageEnd = j["image_end"]?.GetValue<string>() ?? ChatML.ImageEnd,
        ImageSeparator = j["image_separator"]?.GetValue<string>() ?? ChatML.ImageSeparator,
        TrimUser = j["trim_user"]?.GetValue<bool>() ?? false,
    };
}

/// <summary>Finds special-token-looking substrings: &lt;|...|&gt; and &lt;word&gt;.</summary>
internal static class SpecialTokenPattern
{
    static readonly System.Text.RegularExpressions.Regex Pattern = new(@"<\|[^|<>]+\|>|<[a-z_]+>");
    public static IEnumerable<string> Find(string text) => Pattern.Matches(text).Select(m => m.Value);
}
