using System.Text.Json.Nodes;
using SkiaSharp;

namespace GenRecal.Data;

/// <summary>An object in a synthetic scene (pixel coordinates of its centre, radius).</summary>
public sealed record SceneObject(string Shape, string Colour, string Size, int X, int Y, int R);

/// <summary>What an image shows, in full: objects, or a bar chart, or a drawn number.</summary>
/// <param name="NumberAt">top-left corner of a drawn number: placement varies, so number scenes do not run out</param>
public sealed record Scene(string Kind, List<SceneObject> Objects, Dictionary<string, int> Bars, int? Number, int[]? NumberAt = null);

/// <summary>
/// A synthetic visual question-answering benchmark rendered with SkiaSharp, with exact ground truth. Six
/// question families: attribute, counting (with a condition), spatial relation, reading a drawn number,
/// reading a bar chart, and multi-step reasoning over chart values. Every example stores its scene so the
/// answer can be recomputed. Deterministic for a seed; train/val/test never share a scene (each scene is
/// drawn once from one stream and assigned to exactly one split, and duplicate scenes are skipped).
/// Difficulty (object count, bar count, value range) is tunable.
/// </summary>
public static partial class SyntheticBenchmark
{
    public static readonly string[] Families = ["attribute", "counting", "spatial", "text", "chart", "reasoning"];
    public static readonly Dictionary<string, SKColor> Colours = new()
    {
        ["red"] = new SKColor(220, 40, 40), ["green"] = new SKColor(40, 170, 60), ["blue"] = new SKColor(40, 80, 220), ["yellow"] = new SKColor(235, 200, 30),
    };
    public static readonly string[] Shapes = ["circle", "square", "triangle"];
    public const int ImageSize = 64;

    /// <param name="Transfer">size of a fourth split, "transfer": the distillation set, disjoint from the teacher's "train"</param>
    /// <param name="Only">the families to draw (all when null), e.g. to leave out one no model can learn at a preset's size</param>
    public sealed record Options(int Train, int Val, int Test, int Seed, int MaxObjects = 5, int MaxBars = 4, int MaxValue = 9, bool ExplainedAnswers = false,
                                 int Transfer = 0, IReadOnlyList<string>? Only = null);

    /// <summary>The split names in the order they are drawn (a later split never changes an earlier one).</summary>
    public static readonly string[] Splits = ["train", "val", "test", "transfer"];

    public static void Generate(string outDir, Options o)
    {
        if (File.Exists(outDir)) throw new ArgumentException($"{outDir}: the output path is an existing file; it must be a folder");
        var images = Path.Combine(outDir, "images");
        if (File.Exists(images)) throw new ArgumentException($"{images}: is a file; make-data writes its images into this folder");
        Directory.CreateDirectory(images);
        // a smaller benchmark written over a bigger one would leave the old images beside the new lines
        foreach (var stale in Directory.GetFiles(images, "*.png").Where(f => OwnImageName().IsMatch(Path.GetFileName(f)))) File.Delete(stale);
        var rng = new Random(o.Seed);
        var seen = new HashSet<string>();
        int index = 0;
        var families = o.Only?.ToArray() ?? Families;
        foreach (var f in families)
            if (!Families.Contains(f)) throw new ArgumentException($"unknown question family '{f}' (known: {string.Join(", ", Families)})");
        foreach (var (split, count) in new[] { ("train", o.Train), ("val", o.Val), ("test", o.Test), ("transfer", o.Transfer) })
        {
            if (split == "transfer" && count == 0) continue;
            var lines = new List<JsonObject>();
            int misses = 0;
            while (lines.Count < count)
            {
                string family = families[index % families.Length];
                var (scene, question, answer, explained) = Make(family, rng, o);
                if (!seen.Add(SceneKey(scene)))
                {
                    // a repeated scene is never used twice, so no scene crosses splits; a family whose scenes
                    // run out (tiny settings) yields its turn to the next one
                    if (++misses > 200) { index++; misses = 0; }
                    continue;
                }
                misses = 0;
                var id = $"{split}-{lines.Count:D5}";
                var image = $"images/{id}.png";
                Render(scene, Path.Combine(outDir, image));
                lines.Add(new JsonObject
                {
                    ["id"] = id, ["image"] = image, ["family"] = family,
                    ["conversations"] = new JsonArray(
                        new JsonObject { ["from"] = "human", ["value"] = "<image>\n" + question },
                        new JsonObject { ["from"] = "gpt", ["value"] = o.ExplainedAnswers ? explained : answer }),
                    ["answer"] = answer,
                    ["scene"] = SceneJson(scene),
                });
                index++;
            }
            LlavaDataset.Write(Path.Combine(outDir, $"{split}.jsonl"), lines);
        }
    }

    /// <summary>The image names Generate writes (train-00000.png ...): the only files it deletes.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^(train|val|test)-\d{5}\.png$")]
    private static partial System.Text.RegularExpressions.Regex OwnImageName();

    static (Scene, string, string, string) Make(string family, Random rng, Options o)
    {
        switch (family)
        {
            case "attribute":
            {
                var s = Objects(rng, rng.Next(1, Math.Min(4, o.MaxObjects) + 1), distinctShapes: true);
                var target = s.Objects[rng.Next(s.Objects.Count)];
                return rng.Next(2) == 0
                    ? (s, $"What colour is the {target.Shape}?", target.Colour, $"The {target.Shape} is {target.Colour}. Answer: {target.Colour}")
                    : (s, $"Is the {target.Shape} small or large?", target.Size, $"The {target.Shape} is {target.Size}. Answer: {target.Size}");
            }
            case "counting":
            {
                var s = Objects(rng, rng.Next(1, o.MaxObjects + 1));
                var colour = Pick(rng, Colours.Keys.ToArray());
                int n = s.Objects.Count(x => x.Colour == colour);
                return (s, $"How many {colour} shapes are there?", n.ToString(), $"I count {n} {colour} shapes. Answer: {n}");
            }
            case "spatial":
            {
                var s = Objects(rng, 2, distinctShapes: true, separatedX: true);
                var (a, b) = (s.Objects[0], s.Objects[1]);
                string rel = Relations.LeftOrRight(a, b);
                return (s, $"Is the {a.Shape} left or right of the {b.Shape}?", rel, $"The {a.Shape} is to the {rel} of the {b.Shape}. Answer: {rel}");
            }
            case "text":
            {
                int number = rng.Next(0, 1000);
                var (w, h) = SevenSegment.Size(number);
                var s = new Scene("number", [], [], number, [rng.Next(0, ImageSize - w + 1), rng.Next(0, ImageSize - h + 1)]);
                return (s, "What number is written in the image?", number.ToString(), $"The image shows the number {number}. Answer: {number}");
            }
            case "chart":
            {
                var s = Chart(rng, o);
                var colour = Pick(rng, s.Bars.Keys.ToArray());
                return (s, $"What is the value of the {colour} bar?", s.Bars[colour].ToString(), $"The {colour} bar reaches {s.Bars[colour]}. Answer: {s.Bars[colour]}");
            }
            default:
            {
                var s = Chart(rng, o);
                var keys = s.Bars.Keys.ToArray();
                if (rng.Next(2) == 0)
                {
                    var (c1, c2) = TwoDistinct(rng, keys);
                    int sum = s.Bars[c1] + s.Bars[c2];
                    return (s, $"What is the sum of the {c1} and {c2} bars?", sum.ToString(), $"{c1} is {s.Bars[c1]} and {c2} is {s.Bars[c2]}, so the sum is {sum}. Answer: {sum}");
                }
                var max = s.Bars.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).First().Key;
                return (s, "Which bar is the tallest?", max, $"The tallest bar is {max} at {s.Bars[max]}. Answer: {max}");
            }
        }
    }

    static Scene Objects(Random rng, int count, bool distinctShapes = false, bool separatedX = false)
    {
        var objects = new List<SceneObject>();
        var shapes = Shapes.OrderBy(_ => rng.Next()).ToList();
        int attempts = 0;
        while (objects.Count < count && attempts++ < 1000)
        {
            string size = rng.Next(2) == 0 ? "small" : "large";
            int r = size == "small" ? 6 : 11;
            int x = rng.Next(r + 1, ImageSize - r - 1), y = rng.Next(r + 1, ImageSize - r - 1);
            // objects never overlap (so every centre shows its own colour)
            if (objects.Any(o => Math.Abs(o.X - x) < o.R + r + 2 && Math.Abs(o.Y - y) < o.R + r + 2)) continue;
            if (separatedX && objects.Any(o => Math.Abs(o.X - x) < 8)) continue;
            string shape = distinctShapes ? shapes[objects.Count % shapes.Count] : Pick(rng, Shapes);
            objects.Add(new SceneObject(shape, Pick(rng, Colours.Keys.ToArray()), size, x, y, r));
        }
        return new Scene("objects", objects, [], null);
    }

    static Scene Chart(Random rng, Options o)
    {
        int n = rng.Next(2, Math.Min(o.MaxBars, Colours.Count) + 1);
        var bars = Colours.Keys.OrderBy(_ => rng.Next()).Take(n).ToDictionary(c => c, _ => rng.Next(1, o.MaxValue + 1));
        return new Scene("chart", [], bars, null);
    }

    static T Pick<T>(Random rng, T[] items) => items[rng.Next(items.Length)];
    static (T, T) TwoDistinct<T>(Random rng, T[] items)
    {
        int i = rng.Next(items.Length), j = (i + 1 + rng.Next(items.Length - 1)) % items.Length;
        return (items[i], items[j]);
    }

    // ---- rendering ------------------------------------------------------------------------------

    public static void Render(Scene scene, string path)
    {
        using var surface = SKSurface.Create(new SKImageInfo(ImageSize, ImageSize, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var paint = new SKPaint { IsAntialias = false, Style = SKPaintStyle.Fill };
        switch (scene.Kind)
        {
            case "objects":
                foreach (var o in scene.Objects)
                {
                    paint.Color = Colours[o.Colour];
                    if (o.Shape == "circle") canvas.DrawCircle(o.X, o.Y, o.R, paint);
                    else if (o.Shape == "square") canvas.DrawRect(o.X - o.R, o.Y - o.R, 2 * o.R, 2 * o.R, paint);
                    else
                    {
                        canvas.DrawVertices(SKVertexMode.Triangles,
                            [new SKPoint(o.X, o.Y - o.R), new SKPoint(o.X + o.R, o.Y + o.R), new SKPoint(o.X - o.R, o.Y + o.R)], null, null, paint);
                    }
                }
                break;
            case "chart":
            {
                var layout = ChartLayout(scene);
                foreach (var (colour, rect) in layout)
                {
                    paint.Color = Colours[colour];
                    canvas.DrawRect(rect, paint);
                }
                paint.Color = SKColors.Black;
                canvas.DrawRect(2, ImageSize - 4, ImageSize - 4, 1, paint); // axis
                break;
            }
            case "number":
                SevenSegment.Draw(canvas, scene.Number!.Value, scene.NumberAt![0], scene.NumberAt[1]);
                break;
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path); // generated data is rebuilt on failure, so no per-image fsync
        data.SaveTo(file);
    }

    /// <summary>Bar rectangles in drawing order (bars in colour-name order; 6 px per unit up from the axis).</summary>
    public static List<(string Colour, SKRect Rect)> ChartLayout(Scene scene)
    {
        var keys = scene.Bars.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (keys.Count == 0) return [];
        int width = (ImageSize - 8) / keys.Count;
        int unit = (ImageSize - 8) / Math.Max(9, scene.Bars.Values.Max());
        return keys.Select((k, i) => (k, new SKRect(4 + i * width + 2, ImageSize - 4 - scene.Bars[k] * unit, 4 + (i + 1) * width - 2, ImageSize - 4))).ToList();
    }

    static string SceneKey(Scene s) => SceneJson(s).ToJsonString();

    public static JsonObject SceneJson(Scene s) => new()
    {
        ["kind"] = s.Kind,
        ["objects"] = new JsonArray(s.Objects.Select(o => (JsonNode)new JsonObject
        {
            ["shape"] = o.Shape, ["colour"] = o.Colour, ["size"] = o.Size, ["x"] = o.X, ["y"] = o.Y, ["r"] = o.R,
        }).ToArray()),
        ["bars"] = new JsonObject(s.Bars.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        ["number"] = s.Number,
        ["number_at"] = s.NumberAt is null ? null : new JsonArray(s.NumberAt[0], s.NumberAt[1]),
    };

    public static Scene SceneFromJson(JsonObject j) => new(
        j["kind"]!.GetValue<string>(),
        j["objects"]!.AsArray().Select(o => new SceneObject(o!["shape"]!.GetValue<string>(), o["colour"]!.GetValue<string>(), o["size"]!.GetValue<string>(),
            o["x"]!.GetValue<int>(), o["y"]!.GetValue<int>(), o["r"]!.GetValue<int>())).ToList(),
        j["bars"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>()),
        j["number"]?.GetValue<int>(),
        j["number_at"] is JsonArray at ? [at[0]!.GetValue<int>(), at[1]!.GetValue<int>()] : null);
}

/// <summary>Spatial relations as the benchmark defines them.</summary>
public static class Relations
{
    public static string LeftOrRight(SceneObject a, SceneObject b) => a.X < b.X ? "left" : "right";
}

/// <summary>Digits drawn as seven-segment strokes (no font needed, identical on every machine).</summary>
public static class SevenSegment
{
    // segments a,b,c,d,e,f,g per digit
    static readonly string[] Digits = ["abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg"];

    const int W = 14, H = 28, T = 3, Gap = 5;

    /// <summary>Width and height in pixels of a drawn number.</summary>
    public static (int Width, int Height) Size(int number)
    {
        int digits = number.ToString().Length;
        return (digits * W + (digits - 1) * Gap, H);
    }

    public static void Draw(SKCanvas canvas, int number, int x0, int y0)
    {
        var text = number.ToString();
        using var paint = new SKPaint { Color = SKColors.Black, Style = SKPaintStyle.Fill, IsAntialias = false };
        int w = W, h = H, t = T, gap = Gap;
        for (int i = 0; i < text.Length; i++)
        {
            int x = x0 + i * (w + gap);
            foreach (var seg in Digits[text[i] - '0'])
            {
                var r = seg switch
                {
                    'a' => new SKRect(x, y0, x + w, y0 + t),
                    'b' => new SKRect(x + w - t, y0, x + w, y0 + h / 2),
                    'c' => new SKRect(x + w - t, y0 + h / 2, x + w, y0 + h),
                    'd' => new SKRect(x, y0 + h - t, x + w, y0 + h),
                    'e' => new SKRect(x, y0 + h / 2, x + t, y0 + h),
                    'f' => new SKRect(x, y0, x + t, y0 + h / 2),
                    _ => new SKRect(x, y0 + h / 2 - t / 2, x + w, y0 + h / 2 + t / 2),
                };
                canvas.DrawRect(r, paint);
            }
        }
    }
}
