using GenRecal.Cli;
using GenRecal.Tests.Training;

namespace GenRecal.Tests.Cli;

/// <summary>genrecal teacher-features: the teacher pass split across processes, then read by distill.</summary>
[Collection("console")]
public class TeacherFeaturesCliTests
{
    [Fact]
    public void Parts_compute_disjoint_shards_that_together_make_the_store_distill_reads_without_a_teacher_pass()
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root, scale: 0.5);
        TinyPair.Student(root);
        var data = TinyPair.WriteData(root, copies: 80); // 640 lines: shards 0, 1 and 2 (256 lines each)
        var cache = Path.Combine(root, "features");
        string[] Part(string p) => ["teacher-features", "--teacher", Path.Combine(root, "teacher"), "--data", data, "--out", cache, "--part", p];
        string[] Shards() => Directory.GetFiles(cache, "lines-*.safetensors", SearchOption.AllDirectories).Select(Path.GetFileName).Order().ToArray()!;

        var (code, output, err) = CliTests.Run(Part("2/2"));
        Assert.True(code == ExitCodes.Success, err);
        Assert.Contains("part 2/2: 1 shard(s); the teacher ran on 256 example(s)", output);
        Assert.Equal(["lines-000000257-000000512.safetensors"], Shards());

        (code, output, err) = CliTests.Run(Part("1/2"));
        Assert.True(code == ExitCodes.Success, err);
        Assert.Contains("part 1/2: 2 shard(s); the teacher ran on 384 example(s)", output); // lines 1-256 and 513-640
        var shards = Shards();
        Assert.Equal(3, shards.Length);
        var files = Directory.GetFiles(cache, "lines-*.safetensors", SearchOption.AllDirectories);
        var written = files.ToDictionary(f => f, File.GetLastWriteTimeUtc);
        var bytes = files.ToDictionary(f => f, File.ReadAllBytes);

        // a part whose shards are all there and current runs the teacher on nothing
        (code, output, _) = CliTests.Run(Part("1/2"));
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("the teacher ran on 0 example(s)", output);

        // distill finds every shard under the same folder: none is rewritten, and the student trains
        (code, _, err) = CliTests.Run("distill", "--teacher", Path.Combine(root, "teacher"), "--student", Path.Combine(root, "student"), "--data", data,
            "--out", Path.Combine(root, "out"), "--stages", "1,2", "--steps", "2", "--teacher-features", cache);
        Assert.True(code == ExitCodes.Success, err);
        Assert.Equal(shards, Shards());
        foreach (var f in files)
        {
            Assert.Equal(written[f], File.GetLastWriteTimeUtc(f));
            Assert.Equal(bytes[f], File.ReadAllBytes(f));
        }
        // and the stored features are the ones one process would have computed, to the byte
        var single = Path.Combine(root, "single");
        Assert.Equal(ExitCodes.Success, CliTests.Run("teacher-features", "--teacher", Path.Combine(root, "teacher"), "--data", data, "--out", single).Code);
        foreach (var f in files)
            Assert.True(bytes[f].AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(single, Path.GetRelativePath(cache, f)))),
                $"{Path.GetFileName(f)} differs between the split pass and the single one");
    }

    [Theory]
    [InlineData("0/2")]
    [InlineData("3/2")]
    [InlineData("1/0")]
    [InlineData("half")]
    public void A_malformed_part_is_refused_by_name(string part)
    {
        var root = TestSupport.TempDir();
        TinyPair.Teacher(root);
        var (code, _, err) = CliTests.Run("teacher-features", "--teacher", Path.Combine(root, "teacher"), "--data", TinyPair.WriteData(root), "--out", Path.Combine(root, "f"), "--part", part);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains($"--part: '{part}'", err);
    }

    [Fact]
    public void Missing_or_bad_inputs_and_a_damaged_shard_exit_2_naming_the_file()
    {
        var root = TestSupport.TempDir();
        var teacher = TinyPair.Teacher(root);
        var data = TinyPair.WriteData(root);
        var cache = Path.Combine(root, "features");
        static void Refused((int Code, string Out, string Err) r, params string[] expected)
        {
            Assert.True(r.Code == ExitCodes.InputError, $"exit {r.Code}: {r.Err}");
            foreach (var e in expected) Assert.Contains(e, r.Err);
            Assert.DoesNotContain("   at ", r.Err);
        }
        Refused(CliTests.Run("teacher-features", "--teacher", Path.Combine(root, "nope"), "--data", data, "--out", cache), Path.Combine(root, "nope"));
        Refused(CliTests.Run("teacher-features", "--teacher", teacher, "--data", Path.Combine(root, "none.jsonl"), "--out", cache), "none.jsonl");

        var bad = Path.Combine(root, "bad.jsonl");
        File.WriteAllLines(bad, [File.ReadLines(data).First(), "{not json", File.ReadLines(data).Last()]);
        Refused(CliTests.Run("teacher-features", "--teacher", teacher, "--data", bad, "--out", cache), bad, "line 2", "allowing bad lines");
        var (code, _, err) = CliTests.Run("teacher-features", "--teacher", teacher, "--data", bad, "--out", cache, "--allow-bad-lines");
        Assert.True(code == ExitCodes.Success, err);
        Assert.Contains("1 line(s)", err);

        // a shard damaged after it was written is named, not silently recomputed or read
        var shard = Directory.GetFiles(cache, "lines-*.safetensors", SearchOption.AllDirectories).Single();
        File.WriteAllBytes(shard, [1, 2, 3]);
        Refused(CliTests.Run("teacher-features", "--teacher", teacher, "--data", bad, "--out", cache, "--allow-bad-lines"), shard);
    }

    [Fact]
    public void With_dtype_bf16_a_bf16_teacher_fills_the_store_that_a_bf16_distill_reads()
    {
        var root = TestSupport.TempDir();
        var teacher = TinyPair.Teacher(root, scale: 0.5);
        TinyPair.StoreAsBf16(teacher);
        var student = TinyPair.Student(root);
        var data = TinyPair.WriteData(root);
        var cache = Path.Combine(root, "features");
        var (code, _, err) = CliTests.Run("teacher-features", "--teacher", teacher, "--data", data, "--out", cache, "--dtype", "bf16");
        Assert.True(code == ExitCodes.Success, err);
        var shard = Directory.GetFiles(cache, "lines-*.safetensors", SearchOption.AllDirectories).Single();
        Assert.Contains("\"bf16\"", File.ReadAllText(Path.Combine(Path.GetDirectoryName(shard)!, "store.json")));
        var written = File.GetLastWriteTimeUtc(shard);
        (code, _, err) = CliTests.Run("distill", "--teacher", teacher, "--student", student, "--data", data, "--out", Path.Combine(root, "out"),
            "--stages", "1,2", "--steps", "2", "--dtype", "bf16", "--teacher-features", cache);
        Assert.True(code == ExitCodes.Success, err);
        Assert.Single(Directory.GetFiles(cache, "lines-*.safetensors", SearchOption.AllDirectories)); // the same store, not a second one
        Assert.Equal(written, File.GetLastWriteTimeUtc(shard));
    }

    [Fact]
    public void An_unknown_dtype_is_refused_by_option_in_both_commands()
    {
        var root = TestSupport.TempDir();
        var teacher = TinyPair.Teacher(root);
        var student = TinyPair.Student(root);
        var data = TinyPair.WriteData(root);
        foreach (var args in new[]
        {
            new[] { "teacher-features", "--teacher", teacher, "--data", data, "--out", Path.Combine(root, "f"), "--dtype", "fp16" },
            new[] { "distill", "--teacher", teacher, "--student", student, "--data", data, "--out", Path.Combine(root, "o"), "--dtype", "fp16" },
        })
        {
            var (code, _, err) = CliTests.Run(args);
            Assert.Equal(ExitCodes.InputError, code);
            Assert.Contains("--dtype: 'fp16' is not supported (fp32, bf16)", err);
        }
    }
}
