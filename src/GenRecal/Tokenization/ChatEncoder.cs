namespace GenRecal.Tokenization;

/// <summary>One conversation turn: "human" or "gpt" (LLaVA's names) and its text.</summary>
public sealed record ChatTurn(string From, string Value)
{
    public bool IsAssistant => From is "gpt" or "assistant";
}

/// <summary>A tokenized conversation: ids, next-token labels (-100 = not trained), and where the first answer starts.</summary>
public sealed record EncodedChat(int[] Ids, int[] Labels, int FirstAnswerStart, int UnknownTokens)
{
    public const int IgnoreIndex = -100;
}

/// <summary>
/// Lays out conversations with a model's own chat template and tokenizer: the template's system block, then the
/// turns, the image placeholder replaced by the model's image block for that image's number of feature positions
/// (text replacement before tokenization, as InternVL's chat() does). Labels mark the tokens of every assistant
/// turn (its text and end-of-turn marker), as in LLaVA-style SFT.
/// </summary>
public static class ChatEncoder
{
    /// <summary>A generation prompt: the system block, the user turn, then the assistant prefix.</summary>
    public static int[] EncodePrompt(ModelTokenizer tok, string user, int imageTokens) =>
        tok.Encode(string.Concat(Pieces(tok.Template, [new ChatTurn("human", user)], imageTokens, generationPrompt: true).Select(p => p.Text)));

    /// <summary>The text a conversation is laid out as (what <see cref="EncodeConversation"/> tokenizes, piece by
    /// piece), with the assistant prefix after it when <paramref name="generationPrompt"/>: HF's
    /// apply_chat_template(tokenize=False) for a template the layout reproduces.</summary>
    public static string Layout(ChatTemplate template, IReadOnlyList<ChatTurn> turns, bool generationPrompt, int imageTokens = 0) =>
        string.Concat(Pieces(template, turns, imageTokens, generationPrompt).Select(p => p.Text));

    /// <summary>The layout's pieces in order, each with whether it is trained (an assistant answer and its end of turn).</summary>
    static IEnumerable<(string Text, bool Train, bool AnswerStart)> Pieces(ChatTemplate t, IReadOnlyList<ChatTurn> turns, int imageTokens, bool generationPrompt)
    {
        int imageTurn = turns.Select((turn, i) => (turn, i)).Where(p => !p.turn.IsAssistant)
            .OrderBy(p => p.turn.Value.Contains(t.ImagePlaceholder, StringComparison.Ordinal) ? 0 : 1).Select(p => p.i).DefaultIfEmpty(-1).First();
        yield return (t.SystemPrefix, false, false);
        for (int i = 0; i < turns.Count; i++)
        {
            var turn = turns[i];
            if (turn.IsAssistant)
            {
                yield return (t.FormatAssistantStart(), false, false);
                yield return (turn.Value.Trim() + t.EndOfTurn, true, true);
                yield return (t.TurnSeparator, false, false);
            }
            else yield return (t.FormatUser(i == imageTurn ? t.WithImage(turn.Value, imageTokens) : turn.Value), false, false);
        }
        if (generationPrompt) yield return (t.FormatAssistantStart(), false, false);
    }

    /// <param name="imageTokens">feature positions of the conversation's image (0: none); they go to the first user turn
    /// that has the placeholder, or the first user turn</param>
    public static EncodedChat EncodeConversation(ModelTokenizer tok, IReadOnlyList<ChatTurn> turns, int imageTokens)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        int firstAnswer = -1, unknown = 0;
        foreach (var (text, train, answerStart) in Pieces(tok.Template, turns, imageTokens, generationPrompt: false))
        {
            if (answerStart && firstAnswer < 0) firstAnswer = ids.Count;
            if (text.Length == 0) continue;
            var (raw, unk) = tok.EncodeWithReport(text);
            unknown += unk;
            ids.AddRange(raw);
            labels.AddRange(train ? raw : raw.Select(_ => EncodedChat.IgnoreIndex));
        }
        return new EncodedChat(ids.ToArray(), labels.ToArray(), firstAnswer < 0 ? ids.Count : firstAnswer, unknown);
    }
}
