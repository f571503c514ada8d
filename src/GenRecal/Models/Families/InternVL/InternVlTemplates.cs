using GenRecal.Tokenization;

namespace GenRecal.Models.Families.InternVL;

/// <summary>
/// The conversation templates InternVL's config.json names ("template"), as its conversation.py defines them and
/// chat() lays them out (MPT separator style: system prompt + sep, then role + message + sep per turn, the
/// assistant's role alone to prompt). Images: &lt;img&gt;, &lt;IMG_CONTEXT&gt; × the image's tokens, &lt;/img&gt;.
/// A template not listed here is refused: a prompt in another model's format would silently lower every score.
/// </summary>
internal static class InternVlTemplates
{
    const string Hermes2System = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";
    const string InternVl25System = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";

    /// <summary>ChatML roles and InternVL's image block, shared by its ChatML-style templates.</summary>
    static readonly ChatTemplate ChatMl = new()
    {
        UserPrefix = "<|im_start|>user\n", AssistantPrefix = "<|im_start|>assistant\n", EndOfTurn = "<|im_end|>",
        ImagePlaceholder = "<image>", ImageStart = "<img>", ImageContext = "<IMG_CONTEXT>", ImageEnd = "</img>",
    };

    static readonly Dictionary<string, ChatTemplate> Known = new()
    {
        // InternVL2.5 and InternVL3 (Qwen2.5 / InternLM2.5 LMs): system_template '<|im_start|>system\n{system_message}',
        // roles '<|im_start|>user\n' / '<|im_start|>assistant\n', sep '<|im_end|>\n'
        ["internvl2_5"] = ChatMl with { SystemPrefix = "<|im_start|>system\n" + InternVl25System + "<|im_end|>\n", TurnSeparator = "\n" },
        // InternVL2 / InternVL2-Llama3 ChatML models: the same roles, sep '<|im_end|>' with no newline after it
        ["Hermes-2"] = ChatMl with { SystemPrefix = "<|im_start|>system\n" + Hermes2System + "<|im_end|>", TurnSeparator = "" },
    };

    public static IEnumerable<string> Names => Known.Keys;

    public static ChatTemplate For(string? name, string file) =>
        name is not null && Known.TryGetValue(name, out var t) ? t
        : throw new InvalidDataException($"{file}: template {(name is null ? "is missing" : $"'{name}' is not supported")}; supported: {string.Join(", ", Known.Keys)}");
}
