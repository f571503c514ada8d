using GenRecal.Tokenization;

namespace GenRecal.Data;

/// <summary>One training or evaluation example in LLaVA's conversation format.</summary>
/// <param name="ImagePath">absolute path, or null for a text-only conversation</param>
/// <param name="Family">question family (the synthetic benchmark sets it; optional elsewhere)</param>
public sealed record ConversationExample(string Id, string? ImagePath, IReadOnlyList<ChatTurn> Turns, string? Family, int LineNumber)
{
    /// <summary>The first user message and the first answer (what evaluation asks and scores).</summary>
    public string Question => Turns.First(t => !t.IsAssistant).Value;
    public string Answer => Turns.First(t => t.IsAssistant).Value;
}

/// <summary>A line of a data file that could not be used, and why.</summary>
public sealed record DataProblem(string File, int Line, string Problem)
{
    public override string ToString() => $"{File}:{Line}: {Problem}";
}
