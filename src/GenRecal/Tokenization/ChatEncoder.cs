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
    public static int[] EncodePrompt(ModelTokenizer tok, string user, int imageTokens)
    {
        var t = tok.Template;
        return tok.Encode(t.SystemPrefix + t.FormatUser(t.WithImage(user, imageTokens)) + t.FormatAssistantStart());
    }

    /// <param name="imageTokens">feature positions of the conversation's image (0: none); they go to the first user turn
    /// that has the placeholder, or the first user turn</param>
    public static EncodedChat EncodeConversation(ModelTokenizer tok, IReadOnlyList<ChatTurn> turns, int imageTokens)
    {
        var t = tok.Template;
        var ids = new List<int>();
        var labels = new List<int>();
        int firstAnswer = -1, unknown = 0;
        void Add(string text, bool train)
        {
            if (text.Length == 0) return;
            var (raw, unk) = tok.EncodeWithReport(text);
            unknown += unk;
            ids.AddRange(raw);
            labels.AddRange(train ? raw : raw.Select(_ => EncodedChat.IgnoreIndex));
        }
        int imageTurn = turns.Select((turn, i) => (turn, i)).Where(p => !p.turn.IsAssistant)
            .OrderBy(p => p.turn.Value.Contains(t.ImagePlaceholder, StringComparison.Ordinal) ? 0 : 1).Select(p => p.i).DefaultIfEmpty(-1).First();
        Add(t.SystemPrefix, false);
        for (int i = 0; i < turns.Count; i++)
        {
            var turn = turns[i];
            if (turn.IsAssistant)
            {
                Add(t.FormatAssistantStart(), false);
                if (firstAnswer < 0) firstAnswer = ids.Count;
                Add(turn.Value.Trim() + t.EndOfTurn, true);
                Add(t.TurnSeparator, false);
            }
            else Add(t.FormatUser(i == imageTurn ? t.WithImage(turn.Value, imageTokens) : turn.Value), false);
        }
        return new EncodedChat(ids.ToArray(), labels.ToArray(), firstAnswer < 0 ? ids.Count : firstAnswer, unknown);
    }
}
