using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using GenRecal.Cli;
using GenRecal.Models;
using GenRecal.Tests.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Cli;

/// <summary>
/// Generated hostile inputs against the genrecal command: each must exit 2 naming the file (and line), never 70 or a
/// stack trace, and leave what is already in OUT as it was.
/// </summary>
[Collection("console")]
public class HostileInputTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliTests.Run(args);

    static void AssertInputError((int Code, string Out, string Err) r, params string[] expected)
    {
        Assert.True(r.Code == ExitCodes.InputError, $"exit {r.Code}, expected {ExitCodes.InputError}: {r.Err}");
        foreach (var e in expected) Assert.True(r.Err.Contains(e, StringComparison.Ordinal), $"expected '{e}' in: {r.Err}");
        Assert.DoesNotContain("   at ", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
    }

    /// <summary>A saved tiny model (teacher and student of TinyPair) copied fresh for each case.</summary>
    static string CopyOf(string dir, string root)
    {
        var to = Path.Combine(root, Path.GetFileName(dir));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        return to;
    }

    static readonly Lazy<string> Models = new(() =>
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root);
        TinyPair.Student(root);
        TinyPair.WriteData(root);
        return root;
    });

    /// <summary>Rewrites a safetensors file's header text, keeping its data bytes.</summary>
    internal static void RewriteHeader(string path, Func<string, string> edit)
    {
        var bytes = File.ReadAllBytes(path);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = Encoding.UTF8.GetBytes(edit(Encoding.UTF8.GetString(bytes, 8, n).TrimEnd()));
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        File.WriteAllBytes(path, [.. len, .. header, .. bytes.AsSpan(8 + n)]);
    }

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var j = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(j);
        File.WriteAllText(path, j.ToJsonString());
    }

    static JsonObject FirstEntry(JsonObject header) => header.First(kv => kv.Key != "__metadata__").Value!.AsObject();

    static string Header(string text, Action<JsonObject> edit)
    {
        var j = JsonNode.Parse(text)!.AsObject();
        edit(j);
        return j.ToJsonString();
    }

    /// <summary>Model directories corrupted one way each: (name, corruption, file the message must name, words it must hold).</summary>
    public static TheoryData<string> ModelCases => new(CorruptModels.Keys);

    static readonly Dictionary<string, (Action<string> Corrupt, string File, string Words)> CorruptModels = new()
    {
        ["safetensors dtype as a number"] = (d => RewriteHeader(W(d), h => Header(h, j => FirstEntry(j)["dtype"] = 7)), "model.safetensors", "dtype"),
        ["safetensors data_offsets null"] = (d => RewriteHeader(W(d), h => Header(h, j => FirstEntry(j)["data_offsets"] = null)), "model.safetensors", "data_offsets"),
        ["safetensors shape of strings"] = (d => RewriteHeader(W(d), h => Header(h, j => FirstEntry(j)["shape"] = new JsonArray("a", "b"))), "model.safetensors", "shape"),
        ["safetensors non-string metadata"] = (d => RewriteHeader(W(d), h => Header(h, j => j["__metadata__"] = new JsonObject { ["format"] = 5 })), "model.safetensors", "__metadata__"),
        ["safetensors duplicate key"] = (d => RewriteHeader(W(d), h =>
        {
            var first = JsonNode.Parse(h)!.AsObject().First(kv => kv.Key != "__metadata__");
            return h[..h.LastIndexOf('}')] + $",\"{first.Key}\":{first.Value!.ToJsonString()}}}";
        }), "model.safetensors", "Duplicate property '"),
        ["shard index not JSON"] = (d => File.WriteAllText(Path.Combine(d, Pretrained.IndexFileName), "{not json"), Pretrained.IndexFileName, "JSON"),
        ["shard index naming a path"] = (d => File.WriteAllText(Path.Combine(d, Pretrained.IndexFileName), """{"weight_map": {"x": "../x.safetensors"}}"""), Pretrained.IndexFileName, "file name"),
        ["NaN weight"] = (d =>
        {
            var tensors = GenRecal.Tensors.Safetensors.Load(W(d));
            tensors["model.norm.weight"].fill_(float.NaN);
            GenRecal.Tensors.Safetensors.Save(W(d), tensors);
        }, "model.safetensors", "model.norm.weight"),
        ["image_mean of strings"] = (d => EditJson(C(d), j => j["vision_config"] = Vision(v => v["image_mean"] = new JsonArray("a", "b", "c"))), "config.json", "image_mean"),
        ["image_mean with a null"] = (d => EditJson(C(d), j => j["vision_config"] = Vision(v => v["image_mean"] = new JsonArray(null, 0.5, 0.5))), "config.json", "image_mean"),
        ["image_std zero"] = (d => EditJson(C(d), j => j["vision_config"] = Vision(v => v["image_std"] = new JsonArray(0.2, 0, 0.2))), "config.json", "image_std"),
        ["vision_config not an object"] = (d => EditJson(C(d), j => j["vision_config"] = 5), "config.json", "vision_config"),
        ["negative rms_norm_eps"] = (d => EditJson(C(d), j => j["rms_norm_eps"] = -1e-6), "config.json", "rms_norm_eps"),
        ["max_position_embeddings 0"] = (d => EditJson(C(d), j => j["max_position_embeddings"] = 0), "config.json", "max_position_embeddings"),
        ["missing vocab_size"] = (d => EditJson(C(d), j => j.Remove("vocab_size")), "config.json", "missing required key 'vocab_size'"),
        ["vocab_size as a string"] = (d => EditJson(C(d), j => j["vocab_size"] = "many"), "config.json", "vocab_size"),
        ["special token id inside the vocabulary"] = (d => EditJson(Path.Combine(d, "genrecal_tokenizer.json"), j =>
        {
            var specials = j["special_tokens"]!.AsObject();
            specials[specials.First().Key] = 0;
        }), "genrecal_tokenizer.json", "special token ids"),
        ["special token id as a string"] = (d => EditJson(Path.Combine(d, "genrecal_tokenizer.json"), j =>
        {
            var specials = j["special_tokens"]!.AsObject();
            specials[specials.First().Key] = "x";
        }), "genrecal_tokenizer.json", "special_tokens"),
    };

    static string W(string dir) => Path.Combine(dir, Pretrained.WeightsFileName);
    static string C(string dir) => Path.Combine(dir, ModelConfig.FileName);
    static JsonObject Vision(Action<JsonObject> edit)
    {
        var v = TestSupport.TinyVision().ToJson();
        edit(v);
        return v;
    }

    [Theory]
    [MemberData(nameof(ModelCases))]
    public void A_corrupt_model_directory_is_an_input_error_naming_the_file(string name)
    {
        var (corrupt, file, words) = CorruptModels[name];
        var dir = CopyOf(Path.Combine(Models.Value, "teacher"), TestSupport.TempDir());
        corrupt(dir);
        AssertInputError(Run("inspect", "--model", dir), Path.Combine(dir, file), words);
    }

    [Fact]
    public void Bad_arguments_exit_2_and_eval_checks_its_out_before_evaluating()
    {
        var root = TestSupport.TempDir();
        var model = Path.Combine(Models.Value, "teacher");
        var data = Path.Combine(Models.Value, "data.jsonl");
        AssertInputError(Run("distill", "--no-such-option"));
        AssertInputError(Run("generate", "--model", model, "--prompt", "hi", "--temperature", "NaN"), "--temperature");
        AssertInputError(Run("generate", "--model", model, "--prompt", "hi", "--temperature", "-1"), "--temperature");
        AssertInputError(Run("generate", "--model", model, "--prompt", "hi", "--top-p", "NaN"), "--top-p");
        AssertInputError(Run("generate", "--model", model, "--prompt", string.Join(" ", Enumerable.Repeat("sky", 600))), "max_position_embeddings");
        // the model does not exist: an error about --out proves --out was checked first
        AssertInputError(Run("eval", "--model", "/no/such/model", "--data", data, "--out", root), root, "is a directory");
        var longQuestion = Path.Combine(root, "long.jsonl");
        File.WriteAllText(longQuestion, File.ReadAllLines(data)[0] + "\n" + new JsonObject
        {
            ["id"] = "long", ["conversations"] = new JsonArray(
                new JsonObject { ["from"] = "human", ["value"] = string.Join(" ", Enumerable.Repeat("sky", 600)) },
                new JsonObject { ["from"] = "gpt", ["value"] = "blue" }),
        }.ToJsonString() + "\n");
        AssertInputError(Run("eval", "--model", model, "--data", longQuestion), longQuestion, "line 2", "max_position_embeddings");
        var file = Path.Combine(root, "a-file");
        File.WriteAllText(file, "x");
        AssertInputError(Run("distill", "--student", model, "--data", data, "--out", file, "--stages", "sft"), file, "existing file");
        AssertInputError(Run("make-data", "--out", file, "--train", "1"), file, "existing file");
        AssertInputError(Run("distill", "--student", model, "--data", data, "--out", Path.Combine(file, "out"), "--stages", "sft"), Path.Combine(file, "out"), "cannot create the output folder");
        AssertInputError(Run("eval", "--model", model, "--data", data, "--out", Path.Combine(file, "result.json")), file, "is a file");
        Assert.Equal("x", File.ReadAllText(file));
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"lr_strat": 0.1}""");
        AssertInputError(Run("distill", "--student", model, "--data", data, "--out", Path.Combine(root, "out"), "--stages", "sft", "--config", config), config, "lr_strat");
        File.WriteAllText(config, """{"loss_weights": null}""");
        AssertInputError(Run("distill", "--student", model, "--data", data, "--out", Path.Combine(root, "out"), "--stages", "sft", "--config", config), "loss_weights");
    }

    [Fact]
    public void Every_bad_data_line_is_reported_before_step_1_and_allow_bad_lines_skips_them()
    {
        var root = TestSupport.TempDir();
        var student = CopyOf(Path.Combine(Models.Value, "student"), root);
        var good = File.ReadAllLines(Path.Combine(Models.Value, "data.jsonl"));
        static string Line(string id, string question, string answer = "blue", string? image = null) => new JsonObject
        {
            ["id"] = id, ["image"] = image,
            ["conversations"] = new JsonArray(new JsonObject { ["from"] = "human", ["value"] = question }, new JsonObject { ["from"] = "gpt", ["value"] = answer }),
        }.ToJsonString();
        using (var bitmap = new SkiaSharp.SKBitmap(32, 32))
        {
            bitmap.Erase(SkiaSharp.SKColors.Red);
            var png = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100).ToArray();
            File.WriteAllBytes(Path.Combine(root, "cut.png"), png[..(png.Length / 2)]);
        }
        var data = Path.Combine(root, "data.jsonl");
        using (var f = File.Create(data))
        {
            void Write(string s) => f.Write(Encoding.UTF8.GetBytes(s + "\n"));
            Write(good[0]);
            f.Write([.. "{\"id\":\"latin1\",\"conversations\":[{\"from\":\"human\",\"value\":\"caf"u8, 0xE9, // line 2: Latin-1, not UTF-8
                     .. "\"},{\"from\":\"gpt\",\"value\":\"x\"}]}\n"u8]);
            Write(Line("huge", new string('a', GenRecal.Data.LlavaDataset.MaxLineBytes + 10)));                 // line 3: over the line limit
            Write(Line("two-tags", "<image> and <image>", image: "cut.png"));                                     // line 4
            Write(Line("truncated-png", "<image> what colour?", image: "cut.png"));                               // line 5
            Write(Line("cut-off", string.Join(" ", Enumerable.Repeat("why", 40))));                                // line 6: no answer within max_length 32
            foreach (var g in good.Skip(1)) Write(g);
        }
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"steps": {"3": 1}, "batch_size": 2, "max_length": 32}""");
        var output = Path.Combine(root, "out");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = Run("distill", "--student", student, "--data", data, "--out", output, "--stages", "sft", "--config", config);
        AssertInputError(r, data, "5 unusable line(s)", "line 2: not valid UTF-8", "line 3: line is", "line 4: the conversation has 2 <image> tags",
                         "line 5: image is truncated or corrupt", "line 6: student: the answer is cut off by the maximum length 32", "allowing bad lines skips them");
        Assert.False(File.Exists(Path.Combine(output, "training_config.json")));
        Assert.False(File.Exists(Path.Combine(output, "metrics.jsonl")));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"validation took {clock.Elapsed}");

        r = Run("distill", "--student", student, "--data", data, "--out", output, "--stages", "sft", "--config", config, "--allow-bad-lines");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("warning: skipping 5 unusable line(s)", r.Err);
        Assert.Contains("line 6: student: the answer is cut off", r.Err);
    }

    [Fact]
    public void Resume_refuses_changes_that_break_exact_resume_and_corrupt_checkpoints_naming_the_key_or_file()
    {
        var root = TestSupport.TempDir();
        string teacher = CopyOf(Path.Combine(Models.Value, "teacher"), root), student = CopyOf(Path.Combine(Models.Value, "student"), root);
        var data = Path.Combine(root, "data.jsonl");
        File.Copy(Path.Combine(Models.Value, "data.jsonl"), data);
        var output = Path.Combine(root, "out");
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{"steps": {"1": 2}, "batch_size": 2, "checkpoint_every": 1, "seed": 3}""");
        string[] Args(params string[] extra) => ["distill", "--teacher", teacher, "--student", student, "--data", data, "--out", output, "--stages", "1", .. extra];
        AssertInputError(Run(Args("--config", config, "--resume")), "holds no checkpoint; start the run afresh");
        var first = Run(Args("--config", config));
        Assert.True(first.Code == 0, first.Err);
        var before = TestSupport.FilesUnder(output);
        void Refused(string[] args, params string[] expected)
        {
            AssertInputError(Run(args), expected);
            Assert.Equal(before, TestSupport.FilesUnder(output));
        }

        var changed = Path.Combine(root, "changed.json");
        File.WriteAllText(changed, """{"steps": {"1": 2}, "batch_size": 2, "checkpoint_every": 1, "seed": 4}""");
        Refused(Args("--config", changed, "--resume"), "seed was 3", "is 4 now");
        Refused(Args("--config", config, "--resume", "--batch-size", "3"), "batch_size was 2");
        Refused(Args("--config", config, "--resume", "--steps", "3"), "steps.1 was 2");
        Refused(Args("--config", config), "already holds checkpoints", "resume the run");
        File.AppendAllText(data, File.ReadAllLines(data)[0] + "\n");
        Refused(Args("--config", config, "--resume"), "data sha256");
        File.Copy(Path.Combine(Models.Value, "data.jsonl"), data, overwrite: true);

        var checkpoints = Path.Combine(output, "checkpoints");
        var (dir, _) = new GenRecal.Training.CheckpointStore(checkpoints, 2).Latest()!.Value;
        foreach (var (file, garbage) in new[] { (Path.Combine(checkpoints, "latest.json"), "{\"path\": 5"), (Path.Combine(checkpoints, "latest.json"), "{\"path\": \"../..\"}"),
                                                 (Path.Combine(dir, "state.json"), "{\"stage\": \"Nonsense\"}"), (Path.Combine(dir, "optimizer.bin"), "garbage") })
        {
            var original = File.ReadAllBytes(file);
            File.WriteAllText(file, garbage);
            before = TestSupport.FilesUnder(output);
            Refused(Args("--config", config, "--resume"), file);
            File.WriteAllBytes(file, original);
        }
        before = TestSupport.FilesUnder(output);
        Refused(["distill", "--student", student, "--data", data, "--out", student, "--stages", "sft"], "is the student directory");
        Refused(["distill", "--student", Path.Combine(output, "student"), "--data", data, "--out", output, "--stages", "sft", "--resume"], "contains the student directory");

        // a crash mid-append tears the log's last line; --resume tolerates it, as an append-only log must
        var metrics = Path.Combine(output, "metrics.jsonl");
        File.AppendAllText(metrics, "{\"stage\": \"1\", \"step\": 3, \"lo");
        var resumed = Run(Args("--config", config, "--resume"));
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Equal(2, GenRecal.Training.MetricsLog.Read(metrics).Count);
    }

    [Fact]
    public void The_same_directory_as_teacher_and_student_is_a_warning_and_checkpoint_notes_name_only_real_checkpoints()
    {
        var root = TestSupport.TempDir();
        var model = CopyOf(Path.Combine(Models.Value, "student"), root);
        using var recipe = new GenRecal.Training.DistillationRecipe(new GenRecal.Training.DistillationPlan
        {
            TeacherDir = model, StudentDir = model, DataPath = Path.Combine(Models.Value, "data.jsonl"), OutDir = Path.Combine(root, "out"),
            Stages = [GenRecal.Training.Stage.Alignment], Config = new() { Steps = new() { [1] = 1 }, BatchSize = 2 },
        });
        Assert.Contains(recipe.Warnings, w => w.Contains("teacher and student are the same directory"));
        Assert.Contains("no checkpoint was written yet", recipe.CheckpointNote());
        Assert.DoesNotContain("checkpoints", recipe.CheckpointNote());
    }

    [Fact]
    public void Make_data_over_a_bigger_benchmark_leaves_no_old_images()
    {
        var root = TestSupport.TempDir();
        var keep = Path.Combine(root, "images", "mine.png");
        Assert.Equal(0, Run("make-data", "--out", root, "--train", "6", "--val", "2", "--test", "2").Code);
        File.WriteAllText(keep, "not make-data's");
        Assert.Equal(0, Run("make-data", "--out", root, "--train", "2", "--val", "1", "--test", "1").Code);
        var images = Directory.GetFiles(Path.Combine(root, "images")).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["mine.png", "test-00000.png", "train-00000.png", "train-00001.png", "val-00000.png"], images);
    }
}
