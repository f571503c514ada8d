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
/// Lays out conversations with a model's own chat template and tokenizer, expanding each image
/// placeholder to that model's number of image tokens. Labels mark the tokens of every assistant
/// turn (its text and end-of-turn marker), as in LLaVA-style SFT.
/// </summary>
public static class ChatEncoder
{
    /// <summary>A generation prompt: the user turn then the assistant prefix.</summary>
    public static int[] EncodePrompt(ModelTokenizer tok, string user, int numImageTokens) =>
        Expand(tok, tok.Encode(tok.Template.FormatUser(user) + tok.Template.FormatAssistantStart()), numImageTokens).ToArray();

    public static EncodedChat EncodeConversation(ModelTokenizer tok, IReadOnlyList<ChatTurn> turns, int numImageTokens)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        int firstAnswer = -1, unknown = 0;
        void Add(string text, bool train)
        {
            var (raw, unk) = tok.EncodeWithReport(text);
            unknown += unk;
            var expanded = Expand(tok, raw, numImageTokens).ToList();
            ids.AddRange(expanded);
            labels.AddRange(train ? expanded : expanded.Select(_ => EncodedChat.IgnoreIndex));
        }
        foreach (var turn in turns)
        {
            if (turn.IsAssistant)
            {
                Add(tok.Template.FormatAssistantStart(), false);
                if (firstAnswer < 0) firstAnswer = ids.Count;
                Add(turn.Value.Trim() + tok.Template.EndOfTurn, true);
                Add(tok.Template.TurnSeparator, false);
            }
            else Add(tok.Template.FormatUser(turn.Value), false);
        }
        return new EncodedChat(ids.ToArray(), labels.ToArray(), firstAnswer < 0 ? ids.Count : firstAnswer, unknown);
    }

    /// <summary>Replaces each image placeholder id by <paramref name="numImageTokens"/> copies of it.</summary>
    static IEnumerable<int> Expand(ModelTokenizer tok, IEnumerable<int> ids, int numImageTokens)
    {
        int? image = tok.SpecialTokens.TryGetValue(tok.Template.ImagePlaceholder, out var id) ? id : null;
        foreach (var t in ids)
        {
            if (t == image) for (int i = 0; i < numImageTokens; i++) yield return t;
            else yield return t;
        }
    }
}
