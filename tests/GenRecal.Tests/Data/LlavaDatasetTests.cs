using GenRecal.Data;

namespace GenRecal.Tests.Data;

public class LlavaDatasetTests
{
    [Fact]
    public void Unusable_lines_are_reported_by_number_and_never_dropped_silently()
    {
        var dir = TestSupport.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "broken.png"), [1, 2, 3, 4]);
        var path = Path.Combine(dir, "data.jsonl");
        File.WriteAllLines(path,
        [
            """{"id":"ok","conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"}]}""",
            """{"id":"bad json" """,
            """{"id":"noimg","image":"missing.png","conversations":[{"from":"human","value":"<image>\nq"},{"from":"gpt","value":"a"}]}""",
            """{"id":"broken","image":"broken.png","conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}""",
            """{"id":"noanswer","conversations":[{"from":"human","value":"q"}]}""",
            "",
            """{"id":"role","conversations":[{"from":"robot","value":"q"},{"from":"gpt","value":"a"}]}""",
        ]);
        var r = LlavaDataset.Load(path);
        Assert.Equal(["ok"], r.Examples.Select(e => e.Id));
        Assert.Equal([2, 3, 4, 5, 7], r.Problems.Select(p => p.Line));
        Assert.Contains("not valid JSON", r.Problems[0].Problem);
        Assert.Contains("image not found", r.Problems[1].Problem);
        Assert.Contains("not a decodable", r.Problems[2].Problem);
        Assert.Contains("no assistant", r.Problems[3].Problem);
        Assert.Contains("unknown role 'robot'", r.Problems[4].Problem);
        var e = Assert.Throws<InvalidDataException>(() => LlavaDataset.LoadStrict(path));
        Assert.Contains("5 unusable line(s)", e.Message);
        Assert.Contains("line 2", e.Message);
        Assert.Single(LlavaDataset.LoadStrict(path, allowProblems: true));
    }

    [Fact]
    public void Image_paths_are_relative_to_the_file_and_the_placeholder_is_added_when_missing()
    {
        var dir = TestSupport.TempDir();
        GenRecal.Data.SyntheticBenchmark.Generate(dir, new(6, 0, 0, Seed: 2));
        var ex = LlavaDataset.LoadStrict(Path.Combine(dir, "train.jsonl"))[0];
        Assert.True(Path.IsPathRooted(ex.ImagePath));
        Assert.StartsWith("<image>", ex.Question);
    }
}
