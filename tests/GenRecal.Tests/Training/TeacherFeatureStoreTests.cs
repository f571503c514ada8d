using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Recalibration;
using GenRecal.Tensors;
using GenRecal.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Training;

public class TeacherFeatureStoreTests
{
    static TrainingConfig Config(AnswerSource source = AnswerSource.TeacherEmbeddings, double temperature = 1.0) => new()
    {
        Steps = new() { [1] = 3, [2] = 3 }, BatchSize = 4, CheckpointEvery = 0, LrStart = 1e-3, LrEnd = 1e-4, KlTemperature = temperature,
        Recalibrator = new RecalibratorConfig { AnswerSource = source },
        TrainRecalibratorInStage2 = true, // every term in both stages, the regularizer's reading of the stored question included
    };

    [Theory]
    [InlineData(AnswerSource.TeacherEmbeddings, 1.0)]
    [InlineData(AnswerSource.TeacherHidden, 2.0)]
    public void Stored_features_give_the_loss_terms_of_the_live_teacher_in_stages_1_and_2(AnswerSource source, double temperature)
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root, scale: 0.5));
        using var student = Pretrained.Load(TinyPair.Student(root));
        var dataPath = TinyPair.WriteData(root);
        var data = LlavaDataset.LoadStrict(dataPath);
        var config = Config(source, temperature);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        using var sc = new Collator(student.Model, student.Tokenizer, config.MaxLength);
        using var store = new TeacherFeatureStore(Path.Combine(root, "cache"), teacher, dataPath, config);
        store.Fill(data, tc);
        Assert.Equal(data.Count, store.Computed);
        manual_seed(3);
        var rec = new Recalibrator(config.Recalibrator, student.Config.Text, teacher.Config.Text.HiddenSize);
        var step = new GenRecalLossStep(teacher.Model, student.Model, rec, config);
        // a batch in another order and size than the pass's (which sorts by length, 32 at a time)
        var batch = new[] { data[5], data[0], data[7] };
        using var tb = tc.Collate(batch);
        using var sb = sc.Collate(batch);
        foreach (var stage in new[] { Stage.Alignment, Stage.Distillation })
        {
            var live = step.Compute(tb, sb, stage).Named().ToDictionary(p => p.Name, p => p.Value.item<float>());
            var stored = step.Compute(tb, sb, stage, store.Batch(batch, tb, source)).Named().ToDictionary(p => p.Name, p => p.Value.item<float>());
            Assert.Equal(live.Keys.Order(), stored.Keys.Order());
            Assert.Contains("reg_kl", live.Keys);
            Assert.True(live["kl"] > 1e-3); // a teacher with opinions: the KL term is not trivially zero
            foreach (var (name, value) in live) Assert.True(Math.Abs(value - stored[name]) < 1e-5, $"{stage} {name}: live {value}, stored {stored[name]}");
        }
    }

    static DistillationPlan Plan(string root, bool store, string? cache = null, string outName = "out") => new()
    {
        TeacherDir = Path.Combine(root, "teacher"), StudentDir = Path.Combine(root, "student"), DataPath = Path.Combine(root, "data.jsonl"),
        OutDir = Path.Combine(root, outName), Stages = [Stage.Alignment, Stage.Distillation], Config = Config(), StoreTeacherFeatures = store,
        TeacherFeatureCache = cache,
    };

    [Fact]
    public void A_run_reading_the_store_trains_the_same_Recalibrator_and_student_as_one_running_the_teacher()
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root, scale: 0.5);
        TinyPair.Student(root);
        TinyPair.WriteData(root);
        using var live = new DistillationRecipe(Plan(root, store: false, outName: "live"));
        live.Run();
        Assert.Null(live.TeacherFeatures);
        Assert.False(Directory.Exists(Path.Combine(root, "live", "teacher-features")));
        using var stored = new DistillationRecipe(Plan(root, store: true, outName: "stored"));
        stored.Run();
        Assert.Equal(8, stored.TeacherFeatures!.Computed);
        Assert.StartsWith(Path.Combine(root, "stored", "teacher-features"), stored.TeacherFeatures.Dir);
        var a = Recalibrator.Load(Path.Combine(root, "live", "recalibrator")).named_parameters().ToList();
        var b = Recalibrator.Load(Path.Combine(root, "stored", "recalibrator")).named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.All(a, p => Assert.True(TestSupport.MaxAbsDiff(p.parameter, b[p.name]) < 1e-5, p.name));
        var sa = Pretrained.Load(Path.Combine(root, "live", "student")).Model.named_parameters().ToList();
        var sb = Pretrained.Load(Path.Combine(root, "stored", "student")).Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.All(sa, p => Assert.True(TestSupport.MaxAbsDiff(p.parameter, sb[p.name]) < 1e-5, p.name));
        // and the student did train in stage 2, so the comparison covers it
        var init = Pretrained.Load(Path.Combine(root, "student")).Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Contains(sa, p => TestSupport.MaxAbsDiff(p.parameter, init[p.name]) > 1e-6);
    }

    [Fact]
    public void Runs_sharing_teacher_and_data_reuse_the_store_and_another_teacher_or_data_gets_its_own()
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root);
        TinyPair.Student(root);
        TinyPair.WriteData(root);
        var cache = Path.Combine(root, "cache");
        string Run(string outName, bool expectComputed)
        {
            using var recipe = new DistillationRecipe(Plan(root, store: true, cache, outName) with { Stages = [Stage.Alignment], Config = Config() with { Steps = new() { [1] = 1 } } });
            recipe.Run();
            Assert.Equal(expectComputed ? 8 : 0, recipe.TeacherFeatures!.Computed);
            return recipe.TeacherFeatures.Dir;
        }
        var first = Run("a", expectComputed: true);
        Assert.Equal(first, Run("b", expectComputed: false));                        // same teacher and data: reused
        File.AppendAllText(Path.Combine(root, "data.jsonl"), "\n");                   // the same examples, another file
        var otherData = Run("c", expectComputed: true);
        Assert.NotEqual(first, otherData);
        TinyPair.Teacher(root, seed: 9);                                              // another teacher in the same folder
        Assert.NotEqual(otherData, Run("d", expectComputed: true));
        Assert.Equal(3, Directory.GetDirectories(cache).Length);
    }

    [Fact]
    public void A_pass_split_across_two_processes_writes_the_shards_of_a_single_pass()
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root));
        var dataPath = TinyPair.WriteData(root, copies: 33);                          // 264 lines: two shards
        var data = LlavaDataset.LoadStrict(dataPath);
        var config = Config();
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        using var whole = new TeacherFeatureStore(Path.Combine(root, "one"), teacher, dataPath, config);
        whole.Fill(data, tc);
        foreach (var part in new[] { 1, 0 })
        {
            using var piece = new TeacherFeatureStore(Path.Combine(root, "two"), teacher, dataPath, config);
            piece.Fill(data, tc, part, parts: 2);
            Assert.Equal(part == 0 ? TeacherFeatureStore.ShardLines : data.Count - TeacherFeatureStore.ShardLines, piece.Computed);
        }
        var a = Directory.GetFiles(whole.Dir, "lines-*").Order().ToList();
        var b = Directory.GetFiles(whole.Dir.Replace(Path.Combine(root, "one"), Path.Combine(root, "two")), "lines-*").Order().ToList();
        Assert.Equal(2, a.Count);
        Assert.Equal(a.Select(Path.GetFileName), b.Select(Path.GetFileName));
        for (int i = 0; i < a.Count; i++) Assert.Equal(File.ReadAllBytes(a[i]), File.ReadAllBytes(b[i]));
    }

    [Fact]
    public void A_damaged_shard_is_an_error_naming_it()
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root));
        var dataPath = TinyPair.WriteData(root);
        var data = LlavaDataset.LoadStrict(dataPath);
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, 256);
        using (var store = new TeacherFeatureStore(Path.Combine(root, "cache"), teacher, dataPath, Config())) store.Fill(data, tc);
        using var again = new TeacherFeatureStore(Path.Combine(root, "cache"), teacher, dataPath, Config());
        var shard = Assert.Single(Directory.GetFiles(again.Dir, "lines-*"));
        using (var f = File.OpenWrite(shard)) f.SetLength(f.Length - 5);
        var e = Assert.Throws<InvalidDataException>(() => again.Fill(data, tc));
        Assert.Contains(shard, e.Message);
    }

    [Fact]
    public void A_large_vocabulary_is_stored_as_top_k_with_its_tail_and_read_back_in_that_form()
    {
        var root = TestSupport.TempDir();
        using var teacher = Pretrained.Load(TinyPair.Teacher(root, scale: 0.5));
        var dataPath = TinyPair.WriteData(root);
        var data = LlavaDataset.LoadStrict(dataPath);
        var config = Config();
        using var tc = new Collator(teacher.Model, teacher.Tokenizer, config.MaxLength);
        // the tiny teacher's vocabulary counts as "large" below a limit of 8 ids
        using var store = new TeacherFeatureStore(Path.Combine(root, "cache"), teacher, dataPath, config, new TeacherFeatureForm(FullVocabularyLimit: 8, TopK: 5));
        Assert.True(store.IsTopK);
        store.Fill(data, tc);
        using var tb = tc.Collate(data);
        var stored = store.Batch(data, tb, AnswerSource.TeacherEmbeddings).Targets;
        var live = TeacherFeatures.Compute(teacher.Model, tb, AnswerSource.TeacherEmbeddings, 1.0).Targets;
        Assert.Equal(new long[] { live.Rows, 5 }, stored.LogProbs.shape);
        // the stored ids are the live distribution's five most likely, and the tail is the rest of its mass
        var (top, ids) = live.LogProbs.topk(5, dim: -1);
        Assert.Equal(ids.data<long>().ToArray(), stored.Ids!.data<long>().ToArray());
        Assert.True(TestSupport.MaxAbsDiff(top, stored.LogProbs) < 1e-5);
        var tail = (1 - top.exp().sum(-1)).log();
        Assert.True(TestSupport.MaxAbsDiff(tail, stored.TailLogMass!) < 1e-4);
    }
}
