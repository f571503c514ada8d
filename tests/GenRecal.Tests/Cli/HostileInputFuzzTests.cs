using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using GenRecal.Cli;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Tensors;
using GenRecal.Tests.Training;
using static TorchSharp.torch;

namespace GenRecal.Tests.Cli;

/// <summary>
/// Seeded fuzzing of the two formats users hand us most: a safetensors header and a JSONL data line. Each mutant
/// must load, or fail with an input error (CliErrors' exit-2 types) — never an internal error, a hang or a native crash.
/// </summary>
public class HostileInputFuzzTests
{
    const int Mutants = 300;

    static readonly string[] Fragments =
    [
        "null", "-1", "0", "1e308", "-9223372036854775808", "18446744073709551616", "1.5", "\"\"", "\"F32\"", "\"X9\"", "[]", "{}",
        "[1,2]", "[null]", "[-1,4]", "[\"a\"]", "true", "\"\\u0000\"", "\"\\ud800\"", "{\"a\":1,\"a\":2}", "[[[[[[[[[[[[1]]]]]]]]]]]]",
    ];

    /// <summary>One random edit of JSON text: at the byte level (flip, drop, insert, truncate) or a value replaced.</summary>
    static string Mutate(string json, Random rng)
    {
        switch (rng.Next(5))
        {
            case 0:
            {
                var chars = json.ToCharArray();
                chars[rng.Next(chars.Length)] = (char)rng.Next(32, 127);
                return new string(chars);
            }
            case 1: return json.Remove(rng.Next(json.Length), 1);
            case 2:
            {
                const string Significant = "{}[]\":,0-e\\";
                return json.Insert(rng.Next(json.Length), Significant[rng.Next(Significant.Length)].ToString());
            }
            case 3: return json[..rng.Next(json.Length)];
            default:
            {
                var root = JsonNode.Parse(json)!;
                var values = new List<(JsonNode Parent, object Key)>();
                void Walk(JsonNode n)
                {
                    if (n is JsonObject o) foreach (var (k, v) in o) { values.Add((o, k)); if (v is not null) Walk(v); }
                    if (n is JsonArray a) for (int i = 0; i < a.Count; i++) { values.Add((a, i)); if (a[i] is not null) Walk(a[i]!); }
                }
                Walk(root);
                var (parent, key) = values[rng.Next(values.Count)];
                // a marker string stands in for the fragment, which goes in as raw text (some are not valid on their own)
                const string Marker = "\"@@fragment@@\"";
                if (parent is JsonObject po) po[(string)key] = "@@fragment@@";
                else ((JsonArray)parent)[(int)key] = "@@fragment@@";
                return root.ToJsonString().Replace(Marker, Fragments[rng.Next(Fragments.Length)]);
            }
        }
    }

    /// <summary>Runs <paramref name="action"/>; fails the test on anything but success or a user error.</summary>
    static void SuccessOrInputError(Action action, string input)
    {
        try
        {
            action();
        }
        catch (Exception e) when (CliErrors.IsUserError(e))
        {
        }
        catch (Exception e)
        {
            Assert.Fail($"internal error {e.GetType().Name}: {e.Message}\ninput: {(input.Length > 300 ? input[..300] + "..." : input)}");
        }
    }

    [Fact]
    public void Mutated_safetensors_headers_load_or_fail_as_input_errors()
    {
        var dir = TestSupport.TempDir();
        var valid = Path.Combine(dir, "valid.safetensors");
        Safetensors.Save(valid, new Dictionary<string, Tensor> { ["a"] = ones(2, 3), ["b.weight"] = zeros(4, dtype: ScalarType.Int64) },
            new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(valid);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, n).TrimEnd();
        var data = bytes[(8 + n)..];
        var rng = new Random(11);
        var path = Path.Combine(dir, "mutant.safetensors");
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < Mutants; i++)
        {
            var mutant = Mutate(header, rng);
            var h = Encoding.UTF8.GetBytes(mutant);
            var len = new byte[8];
            // now and then the length field lies too
            BinaryPrimitives.WriteUInt64LittleEndian(len, rng.Next(10) == 0 ? (ulong)rng.NextInt64() : (ulong)h.Length);
            File.WriteAllBytes(path, [.. len, .. h, .. data]);
            SuccessOrInputError(() => { foreach (var t in Safetensors.Load(path).Values) t.Dispose(); }, mutant);
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{Mutants} mutants took {clock.Elapsed}");
    }

    [Fact]
    public void Mutated_data_lines_parse_and_collate_or_fail_as_input_errors()
    {
        var root = TestSupport.TempDir();
        var student = Pretrained.Load(TinyPair.Student(root));
        var collator = new Collator(student.Model, student.Tokenizer, 64);
        var line = new JsonObject
        {
            ["id"] = "q1", ["family"] = "counting",
            ["conversations"] = new JsonArray(
                new JsonObject { ["from"] = "human", ["value"] = "How many legs has a cat?" },
                new JsonObject { ["from"] = "gpt", ["value"] = "4" },
                new JsonObject { ["from"] = "human", ["value"] = "And a bird?" },
                new JsonObject { ["from"] = "gpt", ["value"] = "2" }),
        }.ToJsonString();
        var rng = new Random(7);
        var path = Path.Combine(root, "mutant.jsonl");
        var clock = Stopwatch.StartNew();
        int usable = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var mutant = Mutate(line, rng);
            File.WriteAllText(path, mutant + "\n");
            SuccessOrInputError(() =>
            {
                var loaded = LlavaDataset.Load(path);
                // every line is used or reported, none dropped (a blank line is no line)
                Assert.Equal(string.IsNullOrWhiteSpace(mutant) ? 0 : 1, loaded.Examples.Count + loaded.Problems.Count);
                foreach (var ex in loaded.Examples)
                {
                    usable++;
                    if (collator.Problem(ex) is null) collator.Collate([ex]).Dispose();
                }
            }, mutant);
        }
        Assert.InRange(usable, 1, Mutants - 1); // the mutations reach both outcomes
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{Mutants} mutants took {clock.Elapsed}");
    }
}
