using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using GenRecal.Models;
using GenRecal.Runtime;
using static TorchSharp.torch;

// Seeded initialisation draws from libtorch's global generator, so tests that compare two runs for
// bit-equality (resume == uninterrupted) must not interleave with other tests' random draws.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace GenRecal.Tests;

internal static class TestSupport
{
    /// <summary>Tests touch TorchSharp directly, so load the backend before any test type runs.</summary>
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => TorchRuntime.EnsureLoaded();

    public static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]);

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "genrecal-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Starts the genrecal command as a real child process (for signals, kills and locks between processes).</summary>
    public static System.Diagnostics.Process StartCli(Dictionary<string, string> environment, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "GenRecal.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        return System.Diagnostics.Process.Start(psi)!;
    }

    /// <summary>Every file under <paramref name="dir"/> with its bytes, to show a refused run changed nothing.</summary>
    public static Dictionary<string, byte[]> FilesUnder(string dir) => !Directory.Exists(dir) ? [] :
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != ".lock")
            .ToDictionary(f => Path.GetRelativePath(dir, f), File.ReadAllBytes);

    /// <summary>Flattens a nested JSON number array and its shape.</summary>
    public static (float[] Values, long[] Shape) Flatten(JsonNode node)
    {
        var values = new List<float>();
        var shape = new List<long>();
        void Walk(JsonNode n, int depth)
        {
            if (n is JsonArray a)
            {
                if (shape.Count == depth) shape.Add(a.Count);
                foreach (var c in a) Walk(c!, depth + 1);
            }
            else values.Add(n.GetValue<float>());
        }
        Walk(node, 0);
        return (values.ToArray(), shape.ToArray());
    }

    public static Tensor TensorOf(JsonNode node, ScalarType type = ScalarType.Float32)
    {
        var (v, s) = Flatten(node);
        return tensor(v).reshape(s).to(type);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    /// <summary>A tiny Qwen2-style config for fast tests.</summary>
    public static LanguageModelConfig TinyText(int vocab = 64, int hidden = 32, int layers = 2, int heads = 4, int kvHeads = 2, bool tie = false, bool bias = true) => new()
    {
        VocabSize = vocab, HiddenSize = hidden, IntermediateSize = hidden * 2, NumHiddenLayers = layers,
        NumAttentionHeads = heads, NumKeyValueHeads = kvHeads, HeadDim = hidden / heads, TieWordEmbeddings = tie,
        AttentionBias = bias, RopeTheta = 10000, RmsNormEps = 1e-6, MaxPositionEmbeddings = 512,
    };

    public static VisionConfig TinyVision(int imageSize = 16, int patch = 4, double downsample = 0.5) => new()
    {
        ImageSize = imageSize, PatchSize = patch, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1,
        NumAttentionHeads = 2, DownsampleRatio = downsample,
    };

    /// <summary>Gives every parameter a seeded random value so tests do not depend on init details.</summary>
    public static void Randomize(TorchSharp.torch.nn.Module model, long seed, double scale = 0.1)
    {
        manual_seed(seed);
        using var noGrad = no_grad();
        foreach (var p in model.parameters()) p.copy_(randn_like(p) * scale);
    }
}
