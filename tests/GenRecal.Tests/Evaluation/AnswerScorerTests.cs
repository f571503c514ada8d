using GenRecal.Evaluation;

namespace GenRecal.Tests.Evaluation;

public class AnswerScorerTests
{
    [Theory]
    [InlineData(" 12.0", "12")]
    [InlineData("12", "012")]
    [InlineData("Red.", "red")]
    [InlineData("  Left!  ", "left")]
    [InlineData("The sum is 9. Answer: 9", "9")]
    [InlineData("3.50", "3.5")]
    [InlineData("B", "B")]
    [InlineData("(B) a square", "B")]
    [InlineData("b.", "B")]
    public void Equivalent_answers_match(string prediction, string gold) => Assert.True(AnswerScorer.IsCorrect(prediction, gold));

    [Theory]
    [InlineData("12.5", "12")]
    [InlineData("red", "reddish")]
    [InlineData("1 2", "12")]
    [InlineData("C", "B")]
    [InlineData("", "0")]
    public void Different_answers_do_not_match(string prediction, string gold) => Assert.False(AnswerScorer.IsCorrect(prediction, gold));
}
