using System.Security.Cryptography;
using System.Text.Json.Nodes;
using GenRecal.Data;
using SkiaSharp;

namespace GenRecal.Tests.Data;

public class SyntheticBenchmarkTests
{
    static readonly Lazy<string> Generated = new(() =>
    {
        var dir = TestSupport.TempDir();
        SyntheticBenchmark.Generate(dir, new SyntheticBenchmark.Options(60, 12, 24, Seed: 5));
        return dir;
    });

    static List<JsonObject> Lines(string dir, string split) =>
        File.ReadAllLines(Path.Combine(dir, $"{split}.jsonl")).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    /// <summary>Recomputes the answer of a question from the scene alone.</summary>
    static string Recompute(JsonObject line)
    {
        var scene = SyntheticBenchmark.SceneFromJson(line["scene"]!.AsObject());
        var q = line["conversations"]![0]!["value"]!.GetValue<string>().Replace("<image>\n", "");
        string Word(int i) => q.TrimEnd('?').Split(' ')[i];
        switch (line["family"]!.GetValue<string>())
        {
            case "attribute":
                var target = scene.Objects.Single(o => o.Shape == Word(q.StartsWith("What") ? 4 : 2));
                return q.StartsWith("What") ? target.Colour : target.Size;
            case "counting":
                return scene.Objects.Count(o => o.Colour == Word(2)).ToString();
            case "spatial":
                var a = scene.Objects.Single(o => o.Shape == Word(2));
                var b = scene.Objects.Single(o => o.Shape == Word(8));
                return a.X < b.X ? "left" : "right";
            case "text":
                return scene.Number!.Value.ToString();
            case "chart":
                return scene.Bars[Word(6)].ToString();
            default:
                return q.StartsWith("Which")
                    ? scene.Bars.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).First().Key
                    : (scene.Bars[Word(6)] + scene.Bars[Word(8)]).ToString();
        }
    }

    [Fact]
    public void Every_family_is_present_and_every_answer_follows_from_the_scene()
    {
        var lines = Lines(Generated.Value, "train");
        Assert.Equal(SyntheticBenchmark.Families.Order(), lines.Select(l => l["family"]!.GetValue<string>()).Distinct().Order());
        foreach (var line in lines)
        {
            var stored = line["conversations"]![1]!["value"]!.GetValue<string>();
            Assert.Equal(stored, Recompute(line));
            Assert.Equal(stored, line["answer"]!.GetValue<string>());
        }
    }

    [Fact]
    public void Rendered_images_show_what_the_scene_says()
    {
        var dir = Generated.Value;
        int checkedObjects = 0, checkedBars = 0;
        foreach (var line in Lines(dir, "train"))
        {
            var scene = SyntheticBenchmark.SceneFromJson(line["scene"]!.AsObject());
            using var bmp = SKBitmap.Decode(Path.Combine(dir, line["image"]!.GetValue<string>()));
            Assert.Equal(SyntheticBenchmark.ImageSize, bmp.Width);
            foreach (var o in scene.Objects)
            {
                // centre pixel is the object's colour (triangles: a point inside, below the centre)
                var p = bmp.GetPixel(o.X, o.Shape == "triangle" ? o.Y + o.R / 2 : o.Y);
                Assert.Equal(SyntheticBenchmark.Colours[o.Colour], new SKColor(p.Red, p.Green, p.Blue));
                checkedObjects++;
            }
            foreach (var (colour, rect) in SyntheticBenchmark.ChartLayout(scene))
            {
                var inside = bmp.GetPixel((int)rect.MidX, (int)rect.Bottom - 1);
                Assert.Equal(SyntheticBenchmark.Colours[colour], new SKColor(inside.Red, inside.Green, inside.Blue));
                var above = bmp.GetPixel((int)rect.MidX, (int)rect.Top - 2); // nothing above the bar's top
                Assert.Equal(SKColors.White, new SKColor(above.Red, above.Green, above.Blue));
                checkedBars++;
            }
            if (scene.Number is { } number)
            {
                // ink only inside the number's box, and some ink there
                var (w, h) = SevenSegment.Size(number);
                int x0 = scene.NumberAt![0], y0 = scene.NumberAt[1];
                bool Ink(int x, int y) => bmp.GetPixel(x, y).Red == 0;
                Assert.Contains(Enumerable.Range(x0, w), x => Enumerable.Range(y0, h).Any(y => Ink(x, y)));
                Assert.DoesNotContain(Enumerable.Range(0, 64), x => Enumerable.Range(0, 64).Any(y => Ink(x, y) && (x < x0 || x >= x0 + w || y < y0 || y >= y0 + h)));
            }
        }
        Assert.True(checkedObjects > 20 && checkedBars > 10);
    }

    [Fact]
    public void The_same_seed_gives_the_same_files_byte_for_byte()
    {
        var other = TestSupport.TempDir();
        SyntheticBenchmark.Generate(other, new SyntheticBenchmark.Options(60, 12, 24, Seed: 5));
        var a = Generated.Value;
        var files = Directory.GetFiles(a, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(a, f)).Order().ToList();
        Assert.Equal(files, Directory.GetFiles(other, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(other, f)).Order());
        foreach (var f in files)
            Assert.Equal(SHA256.HashData(File.ReadAllBytes(Path.Combine(a, f))), SHA256.HashData(File.ReadAllBytes(Path.Combine(other, f))));
        var third = TestSupport.TempDir();
        SyntheticBenchmark.Generate(third, new SyntheticBenchmark.Options(60, 12, 24, Seed: 6));
        Assert.NotEqual(File.ReadAllText(Path.Combine(a, "train.jsonl")), File.ReadAllText(Path.Combine(third, "train.jsonl")));
    }

    [Fact]
    public void Splits_share_no_scene()
    {
        var scenes = new[] { "train", "val", "test" }.ToDictionary(s => s, s => Lines(Generated.Value, s).Select(l => l["scene"]!.ToJsonString()).ToHashSet());
        Assert.Empty(scenes["train"].Intersect(scenes["val"]));
        Assert.Empty(scenes["train"].Intersect(scenes["test"]));
        Assert.Empty(scenes["val"].Intersect(scenes["test"]));
    }

    [Fact]
    public void Every_family_reaches_every_split_at_demo_scale()
    {
        var dir = TestSupport.TempDir();
        // 1100 number questions in train: more than the 1000 numbers there are, so placement must vary
        SyntheticBenchmark.Generate(dir, new SyntheticBenchmark.Options(6600, 60, 120, Seed: 2));
        foreach (var split in new[] { "train", "val", "test" })
        {
            var counts = Lines(dir, split).GroupBy(l => l["family"]!.GetValue<string>()).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(SyntheticBenchmark.Families.Order(), counts.Keys.Order());
            Assert.True(counts.Values.Max() - counts.Values.Min() <= 1, $"{split}: {string.Join(", ", counts)}");
        }
    }

    [Fact]
    public void Tiny_settings_with_few_possible_scenes_still_finish()
    {
        var dir = TestSupport.TempDir();
        SyntheticBenchmark.Generate(dir, new SyntheticBenchmark.Options(300, 0, 0, Seed: 1, MaxObjects: 2, MaxBars: 2, MaxValue: 2));
        Assert.Equal(300, File.ReadAllLines(Path.Combine(dir, "train.jsonl")).Length);
    }
}
