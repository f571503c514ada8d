namespace GenRecal.Tokenization;

/// <summary>
/// The HF Jinja chat templates (tokenizer_config.json's <c>chat_template</c>) GenRecal can reproduce with a
/// <see cref="ChatTemplate"/>, recognised by their exact text — never by a substring. The texts are embedded from
/// <c>Tokenization/HfChatTemplates/*.jinja</c>, written by <c>tools/chat-templates/extract.mjs</c> from public copies of
/// the checkpoints' tokenizer_config.json (sources listed in tools/chat-templates/README.md). The only normalisation:
/// CRLF line ends read as LF and one final newline ignored (Jinja drops a template's trailing newline).
/// What each one claims is the plain path <see cref="ChatEncoder"/> lays out: user and assistant turns, no system
/// turn (a template's default system message is the <see cref="ChatTemplate.SystemPrefix"/>), no tools;
/// tests/GenRecal.Tests/Tokenization/HfChatTemplatesTests.cs compares that layout with @huggingface/jinja's rendering.
/// </summary>
public static class HfChatTemplates
{
    /// <summary>One recognised template: its name, the embedded text's file, and the layout for a tokenizer's bos token.</summary>
    sealed record Known(string Name, string File, Func<string, ChatTemplate> Make);

    const string QwenSystem = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

    static readonly Known[] All =
    [
        new("ChatML (transformers' default)", "chatml", _ => ChatTemplate.ChatML),
        new("ChatML (\\n escapes, e.g. OpenHermes-2.5)", "chatml-escaped", _ => ChatTemplate.ChatML),
        new("Qwen2-Instruct", "qwen2-instruct", _ => ChatTemplate.ChatML with { SystemPrefix = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" }),
        new("Qwen2.5-Instruct", "qwen2.5-instruct", _ => ChatTemplate.ChatML with { SystemPrefix = QwenSystem }),
        new("Qwen2.5-Instruct (tool example in {{ }})", "qwen2.5-instruct-doubled-braces", _ => ChatTemplate.ChatML with { SystemPrefix = QwenSystem }),
        new("Llama-3-Instruct", "llama3-instruct", bos => ChatTemplate.Llama3 with { SystemPrefix = bos, TrimUser = true }),
        // no system message: the template still writes its system block with the knowledge cutoff and a fixed date
        new("Llama-3.1-Instruct", "llama3.1-instruct", bos => ChatTemplate.Llama3 with
        {
            SystemPrefix = bos + "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>",
            TrimUser = true,
        }),
    ];

    static readonly Lazy<Dictionary<string, Known>> ByText = new(() => All.ToDictionary(k => Normalise(Text(k.File)), k => k, StringComparer.Ordinal));

    /// <summary>The names of the templates recognised, for error messages.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(k => k.Name).ToArray();

    /// <summary>The embedded text of a recognised template (tests compare it with the fixtures' copy).</summary>
    internal static string Text(string file)
    {
        using var stream = typeof(HfChatTemplates).Assembly.GetManifestResourceStream($"GenRecal.HfChatTemplates.{file}.jinja")
            ?? throw new InvalidOperationException($"chat template resource '{file}' is not embedded");
        return new StreamReader(stream).ReadToEnd();
    }

    static string Normalise(string jinja)
    {
        var s = jinja.Replace("\r\n", "\n", StringComparison.Ordinal);
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    /// <summary>The name of a recognised template, or null.</summary>
    public static string? Name(string jinja) => ByText.Value.GetValueOrDefault(Normalise(jinja))?.Name;

    /// <summary>The layout of a recognised Jinja template, <paramref name="bosToken"/> being the tokenizer's bos_token
    /// (LLaMA-3's templates write it; null renders as nothing, as transformers does); null for any other text.</summary>
    public static ChatTemplate? Recognise(string jinja, string? bosToken) =>
        ByText.Value.GetValueOrDefault(Normalise(jinja))?.Make(bosToken ?? "");

    /// <summary>Why a template is not reproduced, for a kind known to be out of reach (null for any other text).
    /// A fingerprint for the message only: every unrecognised template is refused whatever this says.</summary>
    internal static string? KnownUnsupported(string jinja) =>
        jinja.Contains("strftime_now", StringComparison.Ordinal) && jinja.Contains("Cutting Knowledge Date", StringComparison.Ordinal)
            ? "a Llama-3.2-style template, which writes today's date (strftime_now) into its system block"
            : null;
}
