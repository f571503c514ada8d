using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Tests.Training;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Evaluation;

public class PairReportTests
{
    static List<ConversationExample> Data(string root) => LlavaDataset.LoadStrict(TinyPair.WriteData(root));

    [Fact]
    public void A_same_tokenizer_pair_has_all_boundaries_identical()
    {
        var root = TestSupport.TempDir();
        var t = Pretrained.Load(TinyPair.Teacher(root, "gpt2"));
        var s = Pretrained.Load(TinyPair.Student(root, "gpt2"));
        var r = PairReport.Build(t, s, Data(root), 256);
        Assert.Equal(1.0, r.IdenticalBoundaryShare);
        Assert.Equal(0, r.Teacher.AnswerCutOff + r.Student.AnswerCutOff);
        Assert.False(r.HasBlockingProblems);
    }

    [Fact]
    public void Gpt2_versus_o200k_reports_the_measured_difference()
    {
        const string text = "Unbelievably, the 2048 tokenizers' disagreements aren't rare:   whitespace\n\nand     numbers like 1234567 split differently.";
        var gpt2 = ModelTokenizer.FromTiktoken("gpt2");
        var o200k = ModelTokenizer.FromTiktoken("o200k_base");
        var a = PairReport.Boundaries(gpt2, text);
        var b = PairReport.Boundaries(o200k, text);
        // independent count: boundaries from each token's decoded text, accumulated
        int Offsets(ModelTokenizer tok, HashSet<int> into) { int pos = 0; foreach (var id in tok.EncodeBaseText(text)) { pos += tok.DecodeBase([id]).Length; into.Add(pos); } return pos; }
        var ea = new HashSet<int>(); var eb = new HashSet<int>();
        Assert.Equal(text.Length, Offsets(gpt2, ea));
        Offsets(o200k, eb);
        Assert.Equal(ea, a);
        Assert.Equal(eb, b);
        double share = (double)a.Intersect(b).Count() / a.Union(b).Count();
        Assert.InRange(share, 0.3, 0.99); // they really do differ on this text

        var root = TestSupport.TempDir();
        var path = Path.Combine(root, "d.jsonl");
        File.WriteAllText(path, $$"""{"id":"x","conversations":[{"from":"human","value":{{System.Text.Json.JsonSerializer.Serialize(text)}}},{"from":"gpt","value":"ok"}]}""" + "\n");
        var data = LlavaDataset.LoadStrict(path);
        var corpus = new[] { text, "ok" };
        var dirT = Path.Combine(root, "t"); var dirS = Path.Combine(root, "s");
        SaveText(dirT, ModelTokenizer.BuildCompact("o200k_base", corpus));
        SaveText(dirS, ModelTokenizer.BuildCompact("gpt2", corpus));
        var r = PairReport.Build(Pretrained.Load(dirT), Pretrained.Load(dirS), data, 256);
        var ok = PairReport.Boundaries(gpt2, "ok").Intersect(PairReport.Boundaries(o200k, "ok")).Count();
        double expected = (double)(a.Intersect(b).Count() + ok) / (a.Union(b).Count() + PairReport.Boundaries(gpt2, "ok").Union(PairReport.Boundaries(o200k, "ok")).Count());
        Assert.Equal(expected, r.IdenticalBoundaryShare, 9);
    }

    static void SaveText(string dir, ModelTokenizer tok)
    {
        var config = new ModelConfig(TestSupport.TinyText(vocab: tok.VocabSize), null, null);
        Pretrained.Save(Pretrained.Create(config), config, tok, dir);
    }

    [Fact]
    public void The_cost_estimate_uses_the_pairs_configs_and_the_examples_both_can_train_on()
    {
        var root = TestSupport.TempDir();
        using var t = Pretrained.Load(TinyPair.Teacher(root));
        using var s = Pretrained.Load(TinyPair.Student(root));
        var data = Data(root);
        using var tc = new Collator(t.Model, t.Tokenizer, 512);
        using var sc = new Collator(s.Model, s.Tokenizer, 512);
        // a limit that cuts some answers and no question
        int maxLength = data.Max(e => Math.Max(sc.Encode(e).FirstAnswerStart, tc.Encode(e).FirstAnswerStart)) + 1;
        Assert.Contains(data, e => sc.Encode(e).Ids.Length > maxLength);
        var r = PairReport.Build(t, s, data, maxLength);
        var cost = r.Cost!;
        using var rec = new GenRecal.Recalibration.Recalibrator(cost.Config.Recalibrator, s.Config.Text, t.Config.Text.HiddenSize);
        Assert.Equal(rec.parameters().Sum(p => p.numel()), cost.Estimate.RecalibratorParameters);
        // the lengths are the training batches' own: the same estimate from each example's collated batch at that limit
        using var tcCut = new Collator(t.Model, t.Tokenizer, maxLength);
        using var scCut = new Collator(s.Model, s.Tokenizer, maxLength);
        var fromBatches = data.Select(e =>
        {
            using var sb = scCut.Collate([e]);
            using var tb = tcCut.Collate([e]);
            var (ss, ts) = (GenRecal.Recalibration.GenRecalLossStep.SplitOf(sb), GenRecal.Recalibration.GenRecalLossStep.SplitOf(tb));
            return new GenRecal.Training.ExampleLengths(ss.QuestionLengths[0], ss.AnswerLengths[0], GenRecal.Baselines.AnswerRows.Of(sb).Flat.Length,
                ts.QuestionLengths[0], ts.AnswerLengths[0], (int)GenRecal.Recalibration.GenRecalLossStep.ScoredRows(tb, ts).Rows.shape[0]);
        }).ToList();
        Assert.Equal(GenRecal.Training.CostEstimate.Of(t.Config.Text, s.Config.Text, cost.Config, fromBatches), cost.Estimate);
        Assert.Equal(data.Count, cost.StoredExamples);
        Assert.NotNull(r.ToJson()["cost_estimate"]);
        // nothing either model can train on: no estimate
        Assert.Null(PairReport.Build(t, s, data, maxLength: 5).Cost);
    }

    [Fact]
    public void Answers_cut_off_by_the_length_limit_are_counted_as_blocking()
    {
        var root = TestSupport.TempDir();
        var r = PairReport.Build(Pretrained.Load(TinyPair.Teacher(root)), Pretrained.Load(TinyPair.Student(root)), Data(root), maxLength: 5);
        Assert.Equal(TinyPair.Conversations.Length, r.Teacher.AnswerCutOff);
        Assert.True(r.HasBlockingProblems);
    }
}
