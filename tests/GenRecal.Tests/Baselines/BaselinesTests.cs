using GenRecal.Baselines;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tests.Training;
using GenRecal.Tokenization;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Baselines;

public class BaselinesTests
{
    static TrainingConfig Config(string method, int steps = 2) => new()
    {
        Method = method, Steps = new() { [3] = steps }, BatchSize = 4, CheckpointEvery = 0, LrStart = 1e-3, LrEnd = 1e-4,
    };

    /// <summary>Naive per-position logits of a model on a batch, and the answer positions read off its labels.</summary>
    static (Tensor Logits, List<List<int>> Positions) Naive(PretrainedModel m, ModelBatch batch)
    {
        var logits = m.Model.Head(m.Model.Body(m.Model.Embed(batch.InputIds), batch.AttentionMask)); // [B, T, V]
        var positions = new List<List<int>>();
        for (int i = 0; i < batch.Lengths.Length; i++)
            positions.Add(Enumerable.Range(0, (int)batch.Labels.shape[1] - 1).Where(p => batch.Labels[i, p + 1].item<long>() != -100).ToList());
        return (logits, positions);
    }

    [Fact]
    public void Uld_step_equals_a_naive_sorted_l1_over_index_aligned_answer_tokens()
    {
        var root = TestSupport.TempDir();
        var teacher = Pretrained.Load(TinyPair.Teacher(root, ModelTokenizer.BytesBase)); // one token per character: answers of other lengths
        var student = Pretrained.Load(TinyPair.Student(root));
        var examples = LlavaDataset.LoadStrict(TinyPair.WriteData(root)).Take(4).ToList();
        using var tb = new Collator(teacher.Model, teacher.Tokenizer, 64).Collate(examples);
        using var sb = new Collator(student.Model, student.Tokenizer, 64).Collate(examples);
        var terms = new LogitDistillationLossStep(teacher.Model, student.Model, DistillationMethod.Uld, Config("uld")).Compute(tb, sb);

        var (tl, tp) = Naive(teacher, tb);
        var (sl, sp) = Naive(student, sb);
        Assert.Contains(Enumerable.Range(0, examples.Count), i => tp[i].Count != sp[i].Count); // the truncation to the shorter answer is exercised
        double uld = 0, ce = 0;
        int pairs = 0, tokens = 0;
        for (int i = 0; i < examples.Count; i++)
        {
            Assert.NotEmpty(tp[i]);
            for (int k = 0; k < Math.Min(tp[i].Count, sp[i].Count); k++)
            {
                var a = tl[i, tp[i][k]].softmax(0).data<float>().Select(x => (double)x).OrderByDescending(x => x).ToList();
                var b = sl[i, sp[i][k]].softmax(0).data<float>().Select(x => (double)x).OrderByDescending(x => x).ToList();
                while (a.Count < b.Count) a.Add(0);
                while (b.Count < a.Count) b.Add(0);
                uld += a.Zip(b).Sum(p => Math.Abs(p.First - p.Second));
                pairs++;
            }
            foreach (var p in sp[i])
            {
                var logp = sl[i, p].log_softmax(0);
                ce -= logp[sb.Labels[i, p + 1].item<long>()].item<float>();
                tokens++;
            }
        }
        Assert.Equal(uld / pairs, terms.Uld!.item<float>(), 4);
        Assert.Equal(ce / tokens, terms.CeStudent!.item<float>(), 4);
        Assert.Equal(ce / tokens + 1.5 * uld / pairs, terms.Loss.item<float>(), 4); // ULD's λ = 1.5
    }

    [Fact]
    public void Kd_step_is_ce_alone_when_the_student_is_the_teacher_and_equals_naive_kl_otherwise()
    {
        var root = TestSupport.TempDir();
        var teacherDir = TinyPair.Teacher(root);
        var teacher = Pretrained.Load(teacherDir);
        var student = Pretrained.Load(TinyPair.StudentWithTokenizerOf(root, teacherDir));
        var examples = LlavaDataset.LoadStrict(TinyPair.WriteData(root)).Take(4).ToList();
        using var tb = new Collator(teacher.Model, teacher.Tokenizer, 64).Collate(examples);
        using var sb = new Collator(student.Model, student.Tokenizer, 64).Collate(examples);

        var self = new LogitDistillationLossStep(teacher.Model, teacher.Model, DistillationMethod.Kd, Config("kd")).Compute(tb, tb);
        Assert.Equal(0, self.Kl!.item<float>(), 5);
        Assert.Equal(self.CeStudent!.item<float>(), self.Loss.item<float>(), 5);

        var terms = new LogitDistillationLossStep(teacher.Model, student.Model, DistillationMethod.Kd, Config("kd")).Compute(tb, sb);
        var (tl, tp) = Naive(teacher, tb);
        var (sl, _) = Naive(student, sb);
        double kl = 0;
        int n = 0;
        for (int i = 0; i < examples.Count; i++)
            foreach (var p in tp[i])
            {
                var pt = tl[i, p].softmax(0).data<float>().ToArray();
                var ps = sl[i, p].softmax(0).data<float>().ToArray();
                kl += pt.Zip(ps).Sum(x => x.First * Math.Log(x.First / (double)x.Second));
                n++;
            }
        Assert.Equal(kl / n, terms.Kl!.item<float>(), 4);
    }

    [Fact]
    public void Kd_across_vocabularies_is_refused_with_exit_2_naming_the_difference()
    {
        var root = TestSupport.TempDir();
        var (t, s, data) = (TinyPair.Teacher(root), TinyPair.Student(root), TinyPair.WriteData(root));
        var err = new StringWriter();
        var old = Console.Error;
        Console.SetError(err);
        int code;
        try { code = GenRecal.Cli.Program.Run(["distill", "--method", "kd", "--teacher", t, "--student", s, "--data", data, "--out", Path.Combine(root, "out"), "--steps", "1"]); }
        finally { Console.SetError(old); }
        Assert.Equal(2, code);
        Assert.Contains("method 'kd' needs one vocabulary", err.ToString());
        Assert.Contains("vocabulary sizes", err.ToString());
    }

    [Fact]
    public void Seqkd_targets_are_the_teachers_greedy_answers_re_encoded_by_the_student_and_are_cached()
    {
        var root = TestSupport.TempDir();
        var teacherDir = TinyPair.Teacher(root, scale: 0.5); // untrained but opinionated: its answers differ from the data's, so the test can tell
        var plan = new DistillationPlan
        {
            TeacherDir = teacherDir, StudentDir = TinyPair.Student(root), DataPath = TinyPair.WriteData(root),
            OutDir = Path.Combine(root, "out"), Stages = [Stage.Sft], Config = Config("seqkd", steps: 1) with { TeacherAnswerTokens = 6 },
        };
        var recipe = new DistillationRecipe(plan);
        var teacher = Pretrained.Load(teacherDir);
        var gold = LlavaDataset.LoadStrict(plan.DataPath);
        var expected = gold.Select(ex => Evaluator.AnswerBatch(teacher, [ex], 6)[0].Trim()).ToList();
        // examples the teacher answered with nothing have no target and are left out, with a warning
        Assert.Equal(expected.Where(a => a.Length > 0), recipe.Data.Select(ex => ex.Answer));
        Assert.Contains("", expected);
        Assert.Contains(recipe.Warnings, w => w.Contains($"answered {expected.Count(a => a.Length == 0)} example(s) with nothing"));
        Assert.NotEqual(gold.Select(ex => ex.Answer), recipe.Data.Select(ex => ex.Answer));
        // the student trains on its own tokenization of those answers
        var tok = recipe.Student.Tokenizer;
        var encoded = ChatEncoder.EncodeConversation(tok, recipe.Data[0].Turns, 0);
        var trained = encoded.Labels.Where(l => l != EncodedChat.IgnoreIndex).ToArray();
        Assert.Equal(tok.Encode(recipe.Data[0].Answer + tok.Template.EndOfTurn), trained);
        recipe.Run();
        // a second run over the same teacher and data generates nothing: every answer comes from the cache
        var cache = new TeacherAnswers(teacher, Path.Combine(plan.OutDir, "teacher-answers.jsonl"), 6);
        Assert.Equal(expected, cache.For(gold));
        Assert.Equal(0, cache.Generated);
    }

    [Fact]
    public void An_unknown_method_is_refused_listing_every_method_the_cli_takes()
    {
        var e = Assert.Throws<ArgumentException>(() => GenRecal.Cli.Commands.DistillCommand.Configure(null, null, null, "foo"));
        Assert.Contains("genrecal-paper", e.Message);
        Assert.Contains("seqkd", e.Message);
        var paper = GenRecal.Cli.Commands.DistillCommand.Configure(null, null, null, "genrecal-paper");
        Assert.Equal(("genrecal", GenRecal.Recalibration.AnswerSource.TeacherHidden), (paper.Method, paper.Recalibrator.AnswerSource));
    }

    [Fact]
    public void Baseline_methods_refuse_genrecal_stages()
    {
        var root = TestSupport.TempDir();
        var plan = new DistillationPlan
        {
            TeacherDir = TinyPair.Teacher(root), StudentDir = TinyPair.Student(root), DataPath = TinyPair.WriteData(root),
            OutDir = Path.Combine(root, "out"), Stages = [Stage.Alignment], Config = Config("uld"),
        };
        Assert.Contains("one stage", Assert.Throws<ArgumentException>(() => new DistillationRecipe(plan)).Message);
    }
}
