using GenRecal.Demo;
using GenRecal.Recalibration;
using GenRecal.Training;

namespace GenRecal.Tests.Demo;

public class GenRecalVariantsTests
{
    [Fact]
    public void The_default_is_the_libraries_defaults_and_paper_selects_the_published_answer_source()
    {
        var defaults = new TrainingConfig();
        Assert.Equal(AnswerSource.TeacherEmbeddings, defaults.Recalibrator.AnswerSource); // best measured, docs/RESULTS.md
        Assert.Equal(defaults.ToJson(), GenRecalVariants.Get(GenRecalVariants.Default)(defaults).ToJson());
        var paper = GenRecalVariants.Get("paper")(defaults);
        Assert.Equal(AnswerSource.TeacherHidden, paper.Recalibrator.AnswerSource);
        Assert.Equal(defaults.ToJson(), (paper with { Recalibrator = paper.Recalibrator with { AnswerSource = AnswerSource.TeacherEmbeddings } }).ToJson());
    }

    [Fact]
    public void An_unknown_variant_is_refused_with_the_known_names()
    {
        var e = Assert.Throws<ArgumentException>(() => GenRecalVariants.Get("nope"));
        Assert.Contains("paper", e.Message);
        Assert.Contains("embeddings", e.Message);
    }
}
