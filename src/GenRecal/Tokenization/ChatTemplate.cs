using System.Text.Json.Nodes;

namespace GenRecal.Tokenization;

/// <summary>
/// How a model lays out a conversation: role prefixes, the end-of-turn marker, and the image
/// placeholder that is expanded to the model's own number of image tokens. Default: Qwen2's ChatML.
/// </summary>
public sealed record ChatTemplate
{
    public string UserPrefix { get; init; } = "<|im_start|>user\n";
    public string AssistantPrefix { get; init; } = "<|im_start|>assistant\n";
    public string EndOfTurn { get; init; } = "<|im_end|>";
    public string TurnSeparator { get; init; } = "\n";
    public string ImagePlaceholder { get; init; } = "<image>";

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
        new[] { UserPrefix, AssistantPrefix, EndOfTurn, ImagePlaceholder }
            .SelectMany(SpecialTokenPattern.Find).Distinct();

    public string FormatUser(string content) => UserPrefix + content + EndOfTurn + TurnSeparator;
    public string FormatAssistantStart() => AssistantPrefix;
    public string FormatAssistantEnd() => EndOfTurn + TurnSeparator;

    public JsonObject ToJson() => new()
    {
        ["user_prefix"] = UserPrefix, ["assistant_prefix"] = AssistantPrefix, ["end_of_turn"] = EndOfTurn,
        ["turn_separator"] = TurnSeparator, ["image_placeholder"] = ImagePlaceholder,
    };

    public static ChatTemplate FromJson(JsonObject? j) => j is null ? ChatML : new ChatTemplate
    {
        UserPrefix = j["user_prefix"]?.GetValue<string>() ?? ChatML.UserPrefix,
        AssistantPrefix = j["assistant_prefix"]?.GetValue<string>() ?? ChatML.AssistantPrefix,
        EndOfTurn = j["end_of_turn"]?.GetValue<string>() ?? ChatML.EndOfTurn,
        TurnSeparator = j["turn_separator"]?.GetValue<string>() ?? ChatML.TurnSeparator,
        ImagePlaceholder = j["image_placeholder"]?.GetValue<string>() ?? ChatML.ImagePlaceholder,
    };
}

/// <summary>Finds special-token-looking substrings: &lt;|...|&gt; and &lt;word&gt;.</summary>
internal static class SpecialTokenPattern
{
    static readonly System.Text.RegularExpressions.Regex Pattern = new(@"<\|[^|<>]+\|>|<[a-z_]+>");
    public static IEnumerable<string> Find(string text) => Pattern.Matches(text).Select(m => m.Value);
}
