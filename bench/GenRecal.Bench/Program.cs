using System.Diagnostics;
using GenRecal.Demo;
using GenRecal.Models;
using GenRecal.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// Prints throughput figures for the demo's model sizes on this machine. Usage:
//   dotnet run -c Release --project bench/GenRecal.Bench [scalar-race [MiB]] [arms [repeats] [step scale] [examples] [--dtype bf16] [--variants a,b] [--student-layers N] [--no-live]] [cost] [--threads N]
//   dotnet run -c Release --project bench/GenRecal.Bench models [options]   (bench/README.md: against PyTorch, MFU, bf16)
// as the CLI does (GENRECAL_KEEP_FREED_MEMORY=0 measures glibc's defaults)
Console.WriteLine($"keep freed memory: {FreedMemory.Keep()}");
TorchRuntime.EnsureLoaded();
if (args is ["models", ..])
{
    GenRecal.Bench.ModelBench.Run(args[1..]); // its own --threads list
    return;
}
if (TakeOption(ref args, "--threads") is { } threadsArg) set_num_threads(int.Parse(threadsArg));
if (args is ["scalar-race", ..])
{
    ScalarRace(args.Length > 1 ? long.Parse(args[1]) << 20 : GenRecal.Runtime.NoGcRegion.DefaultBudget);
    return;
}
if (args is ["cost", ..])
{
    PaperPairCost.Run();
    return;
}
if (args is ["arms", ..])
{
    // --dtype bf16: both arms in the recipe's mixed precision (the breakdown stays float32);
    // --variants a,b: GenRecal variants timed beside the default; --student-layers N; --no-live: skip the live-teacher arm
    string dtype = TakeOption(ref args, "--dtype") ?? "fp32";
    var variants = TakeOption(ref args, "--variants")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
    int? studentLayers = TakeOption(ref args, "--student-layers") is { } layers ? int.Parse(layers) : null;
    bool live = Array.IndexOf(args, "--no-live") < 0;
    args = args.Where(a => a != "--no-live").ToArray();
    ArmBench.Run(args.Length > 1 ? int.Parse(args[1]) : 3, args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 0.25,
                 args.Length > 3 ? int.Parse(args[3]) : 600, dtype, variants, studentLayers, live);
    return;
}
Console.WriteLine($"threads: {get_num_threads()}, backend: {TorchRuntime.Mode}");

manual_seed(0);
var a = randn(1024, 1024);
a.matmul(a).Dispose();
var sw = Stopwatch.StartNew();
for (int i = 0; i < 20; i++) a.matmul(a).Dispose();
double gflops = 20 * 2.0 * Math.Pow(1024, 3) / sw.Elapsed.TotalSeconds / 1e9;
Console.WriteLine($"fp32 matmul 1024^2: {gflops:F1} GFLOP/s");

var preset = DemoPreset.Quick;
int cores = get_num_threads();
// LibTorch's thread count (genrecal --threads): each size at one thread and at the default, interleaved
int[] threadCounts = cores == 1 ? [1] : [1, cores, 1, cores];
foreach (var threads in threadCounts)
foreach (var (name, text) in new[] { ("teacher", preset.TeacherText), ("student", preset.StudentText) })
{
    set_num_threads(threads);
    manual_seed(0);
    var model = new CausalLanguageModel(text with { VocabSize = 400 });
    var ids = randint(0, 400, [16, 64]);
    using (no_grad()) model.Logits(ids).Dispose();
    sw.Restart();
    int reps = 30;
    using (no_grad()) for (int i = 0; i < reps; i++) model.Logits(ids).Dispose();
    double fwd = reps * ids.numel() / sw.Elapsed.TotalSeconds;
    var opt = optim.AdamW(model.parameters(), 1e-3);
    sw.Restart();
    for (int i = 0; i < reps; i++)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        model.Logits(ids).log_softmax(-1).mean().backward();
        opt.step();
    }
    double train = reps * ids.numel() / sw.Elapsed.TotalSeconds;
    Console.WriteLine($"{name} (hidden {text.HiddenSize}, {text.NumHiddenLayers} layers, {model.CountParameters():N0} params), {threads} thread(s): forward {fwd:N0} tok/s, train step {train:N0} tok/s, ratio {fwd / train:F2}");
}
set_num_threads(cores);

// Removes "NAME VALUE" from the arguments and returns VALUE (null when NAME is absent).
static string? TakeOption(ref string[] args, string name)
{
    int i = Array.IndexOf(args, name);
    if (i < 0) return null;
    if (i + 1 >= args.Length) throw new ArgumentException($"{name} needs a value");
    string value = args[i + 1];
    args = args.Where((_, k) => k != i && k != i + 1).ToArray();
    return value;
}

// TorchSharp 0.107's scalar use-after-free (GenRecal.Runtime.TorchGc): the same tensor-plus-number loop for 10 s,
// alone and with a second thread allocating; prints how far each got.
static void ScalarRace(long budget)
{
    foreach (var (noise, guarded) in new[] { (false, false), (true, false), (true, true) })
    {
        bool stop = false;
        var allocator = new Thread(() =>
        {
            var junk = new List<byte[]>();
            while (!Volatile.Read(ref stop)) { junk.Add(new byte[1000]); if (junk.Count > 1000) junk.Clear(); }
        }) { IsBackground = true };
        if (noise) allocator.Start();
        using var x = ones(4, 4);
        long n = 0;
        var clock = Stopwatch.StartNew();
        string outcome;
        try
        {
            // guarded: the library's remedy, a no-GC region with a boundary between iterations
            using var region = guarded ? new GenRecal.Runtime.NoGcRegion(budget) : null;
            while (clock.Elapsed.TotalSeconds < 10)
            {
                region?.Boundary();
                using var scope = NewDisposeScope();
                _ = ((x + 1.0) * 2.0).clamp_min(0.5);
                n++;
            }
            outcome = "no error";
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException)
        {
            outcome = "libtorch error: " + e.Message.Split('\n')[0];
        }
        Volatile.Write(ref stop, true);
        Console.WriteLine($"scalar ops {(noise ? "with" : "without")} an allocating thread{(guarded ? ", in a no-GC region" : "")}: {n:N0} iterations in {clock.Elapsed.TotalSeconds:F1} s, {outcome}");
    }
}
