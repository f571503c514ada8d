using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using GenRecal.Demo;
using GenRecal.Models;
using GenRecal.Runtime;
using GenRecal.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Bench;

/// <summary>
/// <c>models</c>: forward and training-step throughput of the decoder at the demo's teacher and student sizes and at a
/// GPT-2-small-sized 124M decoder, in fp32 and pure bf16 (the model cast with <c>.to(bfloat16)</c>), their model-FLOPs
/// utilisation against matmul peaks measured in the same run, and the same model and step in PyTorch
/// (bench/pytorch/decoder.py, a warm subprocess) measured interleaved with ours: A/B/A/B, fp32 and bf16 alternating
/// inside each repeat. See bench/README.md.
/// </summary>
static class ModelBench
{
    sealed record Size(string Name, LanguageModelConfig Text, int Batch, int Seq, int Steps);

    static readonly Size[] Sizes =
    [
        // the bench's vocabulary of 400 and batch of 16 x 64, as Program.cs's throughput lines
        new("teacher", DemoPreset.Quick.TeacherText with { VocabSize = 400 }, 16, 64, 20),
        new("student", DemoPreset.Quick.StudentText with { VocabSize = 400 }, 16, 64, 40),
        // GPT-2 small's sizes in the Qwen2 layout: 123.6M parameters (SwiGLU intermediate 2048 = 8/3 x 768, gpt2's
        // vocabulary, tied embeddings, q/k/v bias); batch 4 x 256
        new("124m", new LanguageModelConfig
        {
            VocabSize = 50257, HiddenSize = 768, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 12,
            NumKeyValueHeads = 12, HeadDim = 64, RopeTheta = 10000, AttentionBias = true, TieWordEmbeddings = true,
        }, 4, 256, 2),
    ];

    // The dtypes measured: fp32; pure bf16 (weights and AdamW state in bf16: an upper bound, not how anyone trains); and
    // mixed, the recipe's `--dtype bf16` (Training/MixedPrecision: bf16 compute, float32 master weights, gradients and
    // AdamW state, the loss in float32), whose PyTorch counterpart is torch.autocast("cpu", dtype=torch.bfloat16)
    // around the forward of a float32 model.
    static readonly string[] AllDtypes = ["fp32", "bf16", "mixed"];

    /// <summary>True for the dtypes whose matmuls run in bf16 (their MFU is against the bf16 peak).</summary>
    static bool Bf16Compute(string dtype) => dtype is "bf16" or "mixed";

    sealed class Options
    {
        public int[] Threads = [1, 2];
        public string[] Sizes = ["teacher", "student", "124m"];
        public string[] Dtypes = AllDtypes;
        public int Repeats = 3;
        public int? Steps;
        public bool PyTorch = true;
        public string Python = "/usr/bin/python3";
        public string Blas = Environment.GetEnvironmentVariable("GENRECAL_BENCH_BLAS") ?? "/opt/openblas-bench/root/usr/lib/x86_64-linux-gnu/openblas-openmp";
        public bool Sections;
        public bool Shapes;
    }

    sealed record Sample(double Fwd, double Train);

    sealed class Row
    {
        public required string Size, Dtype;
        public required int Threads;
        public required long Params;
        public required double FlopsPerToken;
        public List<Sample> Ours = [], Theirs = [];
        public List<double> PeakF32 = [], PeakBf16 = [], PeakShapes = [];
    }

    public static void Run(string[] args)
    {
        var o = Parse(args);
        string script = o.PyTorch ? FindScript() : ""; // --no-pytorch runs from anywhere
        Console.WriteLine($"models bench {DateTime.Now:yyyy-MM-dd HH:mm} | load {Load()} | cores {Environment.ProcessorCount} | LibTorch threads {string.Join(",", o.Threads)} | repeats {o.Repeats}");
        Console.WriteLine("FLOPs: every matmul counted (linear layers, LM head, q.k^T and p.v over all T keys); train step = 3 x forward");
        var rows = new List<Row>();
        if (o.Shapes)
        {
            foreach (int threads in o.Threads)
            foreach (var size in Sizes.Where(s => o.Sizes.Contains(s.Name)))
            {
                set_num_threads(threads);
                Console.WriteLine($"\n== matmul shapes of {size.Name}, {threads} thread(s) ==");
                ShapeTable(size);
            }
            return;
        }
        foreach (int threads in o.Threads)
        foreach (var size in Sizes.Where(s => o.Sizes.Contains(s.Name)))
        {
            set_num_threads(threads);
            int steps = o.Steps ?? size.Steps;
            Console.WriteLine($"\n== {size.Name}, {threads} thread(s), batch {size.Batch} x {size.Seq}, {steps} timed steps per sample ==");
            var runs = new List<(string Dtype, CSharpStep Ours, PyServer? Theirs, Row Row)>();
            foreach (var dtype in o.Dtypes)
            {
                var ours = new CSharpStep(size, dtype);
                var theirs = o.PyTorch ? new PyServer(o, script, size, dtype, threads, steps) : null;
                if (theirs is not null && theirs.Params != ours.Params)
                    throw new InvalidOperationException($"{size.Name}: PyTorch's model has {theirs.Params:N0} parameters, ours {ours.Params:N0}: the architectures differ");
                var row = new Row { Size = size.Name, Dtype = dtype, Threads = threads, Params = ours.Params, FlopsPerToken = FlopsPerToken(size) };
                Console.WriteLine($"{dtype}: {ours.Params:N0} parameters, {row.FlopsPerToken / 1e6:F2} MFLOP/token forward{(theirs is null ? "" : $"; PyTorch {theirs.Version}, BLAS {theirs.Blas}, {theirs.Threads} thread(s)")}");
                runs.Add((dtype, ours, theirs, row));
                rows.Add(row);
            }
            for (int r = 0; r < o.Repeats; r++)
            foreach (var (dtype, ours, theirs, row) in runs)
            {
                var (f32, bf16, shapes) = Peaks(size, dtype);
                row.PeakF32.Add(f32); row.PeakBf16.Add(bf16); row.PeakShapes.Add(shapes);
                var a = ours.Measure(steps);
                row.Ours.Add(a);
                var line = new StringBuilder($"  #{r + 1} {dtype}: peaks fp32 {f32:F0}, bf16 {bf16:F0}, {dtype} model shapes {shapes:F0} GFLOP/s | ours fwd {a.Fwd:N0} train {a.Train:N0} tok/s (MFU {Mfu(row, a.Train, 3, Bf16Compute(dtype) ? bf16 : f32):P0})");
                if (theirs is not null)
                {
                    var b = theirs.Measure();
                    row.Theirs.Add(b);
                    line.Append($" | PyTorch fwd {b.Fwd:N0} train {b.Train:N0} | ratio fwd {a.Fwd / b.Fwd:F2} train {a.Train / b.Train:F2}");
                }
                Console.WriteLine(line);
            }
            foreach (var (_, ours, theirs, _) in runs) { ours.Dispose(); theirs?.Dispose(); }
            Console.WriteLine($"load now: {Load()}");
            Console.WriteLine(Table(rows.Where(r => r.Size == size.Name && r.Threads == threads).ToList()));
            if (o.Sections) foreach (var dtype in o.Dtypes) Sections(size, dtype);
        }
        Console.WriteLine($"\nall sizes; load at the end: {Load()}");
        Console.WriteLine(Table(rows));
    }

    static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--threads": o.Threads = Next().Split(',').Select(int.Parse).ToArray(); break;
                case "--sizes": o.Sizes = Next().Split(','); break;
                case "--dtypes": o.Dtypes = Next().Split(','); break;
                case "--repeats": o.Repeats = int.Parse(Next()); break;
                case "--steps": o.Steps = int.Parse(Next()); break;
                case "--no-pytorch": o.PyTorch = false; break;
                case "--python": o.Python = Next(); break;
                case "--blas": o.Blas = Next(); break;
                case "--sections": o.Sections = true; break;
                case "--shapes": o.Shapes = true; break;
                default: throw new ArgumentException($"unknown option {args[i]} (--threads 1,2 --sizes teacher,student,124m --dtypes fp32,bf16 --repeats N --steps N --no-pytorch --python PATH --blas DIR --sections --shapes)");
            }
        }
        foreach (var s in o.Sizes) if (!Sizes.Any(z => z.Name == s)) throw new ArgumentException($"unknown size {s}");
        foreach (var d in o.Dtypes) if (!AllDtypes.Contains(d)) throw new ArgumentException($"unknown dtype {d} ({string.Join(", ", AllDtypes)})");
        return o;
    }

    /// <summary>Forward model FLOPs per token: every matmul, 2 per multiply-add, attention over all T keys, the head on
    /// every position (bench/pytorch/decoder.py's flops_per_token).</summary>
    static double FlopsPerToken(Size s) => GenRecal.Training.CostEstimate.DecoderForward(s.Text, s.Seq, s.Seq) / s.Seq;

    static double Mfu(Row row, double tokPerS, int passes, double peakGflops) => tokPerS * passes * row.FlopsPerToken / (peakGflops * 1e9);

    /// <summary>GFLOP/s of a 2048² fp32 matmul, of the same in bf16, and of one forward's matmul shapes (one layer's
    /// linears and attention's two batched matmuls, counted once per layer, and the LM head) in the run's dtype; best of 3.</summary>
    static (double F32, double Bf16, double Shapes) Peaks(Size s, string dtype)
    {
        using var region = new NoGcRegion();
        double Square(ScalarType t)
        {
            using var scope = NewDisposeScope();
            var a = randn(2048, 2048).to(t);
            a.matmul(a);
            double best = 0;
            for (int i = 0; i < 3; i++)
            {
                region.Boundary();
                var sw = Stopwatch.StartNew();
                using (NewDisposeScope()) a.matmul(a);
                best = Math.Max(best, 2.0 * Math.Pow(2048, 3) / sw.Elapsed.TotalSeconds / 1e9);
            }
            return best;
        }
        double Shapes(ScalarType t)
        {
            using var scope = NewDisposeScope();
            var c = s.Text;
            long bt = s.Batch * s.Seq, h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
            var linears = new (long In, long Out)[] { (h, q), (h, kv), (h, kv), (q, h), (h, c.IntermediateSize), (h, c.IntermediateSize), (c.IntermediateSize, h), (h, c.VocabSize) };
            var inputs = linears.Select(l => (X: randn(bt, l.In).to(t), W: randn(l.Out, l.In).to(t))).ToArray();
            long bh = s.Batch * c.NumAttentionHeads;
            var qs = randn(bh, s.Seq, c.HeadDim).to(t);
            var ks = randn(bh, c.HeadDim, s.Seq).to(t);
            var ps = randn(bh, s.Seq, s.Seq).to(t);
            // one layer's matmuls (timed once, counted num_hidden_layers times) and the LM head's, weighted as in the model
            int L = c.NumHiddenLayers;
            double layerFlops = linears.SkipLast(1).Sum(l => 2.0 * bt * l.In * l.Out) + 2 * 2.0 * bh * s.Seq * s.Seq * c.HeadDim;
            double headFlops = 2.0 * bt * c.HiddenSize * c.VocabSize;
            double best = 0;
            for (int i = 0; i < 4; i++)
            {
                region.Boundary();
                var sw = Stopwatch.StartNew();
                using (NewDisposeScope())
                {
                    foreach (var (x, w) in inputs.SkipLast(1)) nn.functional.linear(x, w);
                    qs.matmul(ks); ps.matmul(qs);
                }
                double layer = sw.Elapsed.TotalSeconds;
                sw.Restart();
                using (NewDisposeScope()) nn.functional.linear(inputs[^1].X, inputs[^1].W);
                double head = sw.Elapsed.TotalSeconds;
                if (i > 0) best = Math.Max(best, (L * layerFlops + headFlops) / (L * layer + head) / 1e9);
            }
            return best;
        }
        return (Square(ScalarType.Float32), Square(ScalarType.BFloat16), Shapes(Bf16Compute(dtype) ? ScalarType.BFloat16 : ScalarType.Float32));
    }

    /// <summary>Our model and training step: zero_grad, logits, cross-entropy over every position, backward, AdamW.</summary>
    sealed class CSharpStep : IDisposable
    {
        readonly CausalLanguageModel model;
        readonly optim.Optimizer opt;
        readonly MixedPrecision? mixed;
        readonly Tensor ids, targets;
        readonly long vocab;

        public CSharpStep(Size s, string dtype)
        {
            manual_seed(0);
            model = new CausalLanguageModel(s.Text);
            if (dtype == "mixed") mixed = MixedPrecision.Over([model], allTrained: true); // float32 masters, then the model in bf16
            else if (dtype == "bf16") model.to(ScalarType.BFloat16);
            Params = model.CountParameters();
            vocab = s.Text.VocabSize;
            ids = randint(0, vocab, [s.Batch, s.Seq]);
            targets = randint(0, vocab, [s.Batch, s.Seq]);
            opt = optim.AdamW(mixed is null ? model.parameters() : mixed.Masters, 1e-4);
            using var region = new NoGcRegion();
            using (no_grad()) using (NewDisposeScope()) model.Logits(ids);
            Step();
        }

        public long Params { get; }

        public void Forward()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            model.Logits(ids);
        }

        public void Step()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var logits = model.Logits(ids);
            if (mixed is null)
            {
                nn.functional.cross_entropy(logits.view(-1, vocab), targets.view(-1)).backward();
                opt.step();
                return;
            }
            nn.functional.cross_entropy(logits.view(-1, vocab).to(ScalarType.Float32), targets.view(-1)).backward();
            mixed.AccumulateGradients();
            opt.step();
            mixed.MastersToModels();
        }

        public Sample Measure(int steps)
        {
            using var region = new NoGcRegion();
            long tokens = ids.numel();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) { region.Boundary(); Forward(); }
            double fwd = steps * tokens / sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int i = 0; i < steps; i++) { region.Boundary(); Step(); }
            return new Sample(fwd, steps * tokens / sw.Elapsed.TotalSeconds);
        }

        public void Dispose()
        {
            opt.Dispose();
            mixed?.Dispose();
            model.Dispose();
            ids.Dispose();
            targets.Dispose();
        }
    }

    /// <summary>bench/pytorch/decoder.py --serve: builds and warms the same model, then measures once per "run".</summary>
    sealed class PyServer : IDisposable
    {
        readonly Process process;

        public PyServer(Options o, string script, Size s, string dtype, int threads, int steps)
        {
            var c = s.Text;
            var psi = new ProcessStartInfo(o.Python) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[]
            {
                script, "--serve", "--dtype", dtype, "--threads", $"{threads}", "--steps", $"{steps}", "--warmup", "1",
                "--vocab", $"{c.VocabSize}", "--hidden", $"{c.HiddenSize}", "--intermediate", $"{c.IntermediateSize}",
                "--layers", $"{c.NumHiddenLayers}", "--heads", $"{c.NumAttentionHeads}", "--kv-heads", $"{c.NumKeyValueHeads}",
                "--head-dim", $"{c.HeadDim}", "--batch", $"{s.Batch}", "--seq", $"{s.Seq}", "--bias", c.AttentionBias ? "1" : "0",
                "--tied", c.TieWordEmbeddings ? "1" : "0", "--theta", c.RopeTheta.ToString(CultureInfo.InvariantCulture),
            }) psi.ArgumentList.Add(a);
            if (Directory.Exists(o.Blas)) psi.Environment["LD_LIBRARY_PATH"] = o.Blas;
            else Console.WriteLine($"warning: no OpenBLAS at {o.Blas} (--blas DIR): PyTorch runs with the system's libblas.so.3");
            foreach (var v in new[] { "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS" }) psi.Environment[v] = $"{threads}";
            process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {o.Python}");
            using var ready = Read();
            var root = ready.RootElement;
            Params = root.GetProperty("params").GetInt64();
            Version = root.GetProperty("torch").GetString()!;
            Blas = root.GetProperty("blas").GetString()!;
            Threads = root.GetProperty("threads").GetInt32();
        }

        public long Params { get; }
        public string Version { get; }
        public string Blas { get; }
        public int Threads { get; }

        JsonDocument Read()
        {
            var line = process.StandardOutput.ReadLine() ?? throw new InvalidOperationException($"decoder.py exited ({(process.WaitForExit(5000) ? process.ExitCode : -1)})");
            return JsonDocument.Parse(line);
        }

        public Sample Measure()
        {
            process.StandardInput.WriteLine("run");
            process.StandardInput.Flush();
            using var doc = Read();
            return new Sample(doc.RootElement.GetProperty("forward_tok_s").GetDouble(), doc.RootElement.GetProperty("train_tok_s").GetDouble());
        }

        public void Dispose()
        {
            process.StandardInput.Close();
            if (!process.WaitForExit(30_000)) process.Kill();
            process.Dispose();
        }
    }

    /// <summary>Where one forward and one training step spend their time: each part of the model timed on its own
    /// (forward with no_grad), and the whole step split into forward, loss, backward and optimizer.</summary>
    static void Sections(Size s, string dtype)
    {
        var c = s.Text;
        var t = Bf16Compute(dtype) ? ScalarType.BFloat16 : ScalarType.Float32;
        manual_seed(0);
        using var model = new CausalLanguageModel(c);
        if (t == ScalarType.BFloat16) model.to(t);
        var ids = randint(0, c.VocabSize, [s.Batch, s.Seq]);
        var targets = randint(0, c.VocabSize, [s.Batch, s.Seq]);
        var layer = model.model.layers[0];
        var attn = layer.self_attn;
        long b = s.Batch, T = s.Seq;
        var results = new List<(string Name, double Ms)>();
        using var region = new NoGcRegion();
        double Time(string name, Action f, int reps)
        {
            using (NewDisposeScope()) f();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) { region.Boundary(); using var scope = NewDisposeScope(); f(); }
            double ms = sw.Elapsed.TotalMilliseconds / reps;
            results.Add((name, ms));
            return ms;
        }
        int reps = Math.Max(2, s.Steps);
        using (no_grad())
        {
            var x = model.Embed(ids);
            var mask = Modules.AttentionMask.Causal(b, T, 0, null, dtype: t);
            var pos = Modules.AttentionMask.Positions(b, T, 0, null);
            var rot = new Modules.RotaryEmbedding(c.HeadDim, c.RopeTheta);
            var (cos, sin) = rot.Compute(pos, t);
            var q = attn.q_proj.forward(x).view(b, T, c.NumAttentionHeads, c.HeadDim).transpose(1, 2);
            var k = attn.k_proj.forward(x).view(b, T, c.NumKeyValueHeads, c.HeadDim).transpose(1, 2);
            int groups = c.NumAttentionHeads / c.NumKeyValueHeads;
            var kr = groups > 1 ? k.repeat_interleave(groups, 1) : k;
            var scores = q.matmul(kr.transpose(2, 3)) / Math.Sqrt(c.HeadDim) + mask;
            var probs = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
            var hidden = model.Body(x);
            int L = c.NumHiddenLayers;
            Console.WriteLine($"  sections, {s.Name} {dtype} (ms; per layer x {L} where marked; scores' dtype {scores.dtype}):");
            Time("rmsnorm (x2 per layer)", () => layer.input_layernorm.forward(x), reps);
            Time("q/k/v projections", () => { attn.q_proj.forward(x); attn.k_proj.forward(x); attn.v_proj.forward(x); }, reps);
            Time("rotary (q and k)", () => { Modules.RotaryEmbedding.Apply(q, cos, sin); Modules.RotaryEmbedding.Apply(k, cos, sin); }, reps);
            if (groups > 1) Time("repeat_interleave k, v", () => { k.repeat_interleave(groups, 1); k.repeat_interleave(groups, 1); }, reps);
            Time("q.k^T", () => q.matmul(kr.transpose(2, 3)), reps);
            Time("scale + mask add", () => { var _ = q.matmul(kr.transpose(2, 3)) / Math.Sqrt(c.HeadDim) + mask; }, reps);
            Time("softmax (fp32) + cast", () => scores.softmax(-1, ScalarType.Float32).to(q.dtype), reps);
            Time("p.v + reshape", () => probs.matmul(kr).transpose(1, 2).reshape(b, T, c.NumAttentionHeads * c.HeadDim), reps);
            Time("o_proj", () => attn.o_proj.forward(x), reps);
            Time("swiglu mlp", () => layer.mlp.forward(x), reps);
            Time("whole layer", () => layer.Forward(x, cos, sin, mask, null, 0), reps);
            Time("LM head", () => model.Head(hidden), reps);
            var logits = model.Head(hidden);
            Time("cross-entropy", () => nn.functional.cross_entropy(logits.view(-1, c.VocabSize), targets.view(-1)), reps);
            Time("body (embed, layers, final norm)", () => model.Body(model.Embed(ids)), reps);
            Time("whole forward", () => model.Logits(ids), reps);
        }
        var opt = optim.AdamW(model.parameters(), 1e-4);
        Tensor? loss = null;
        Time("step: forward + loss (grad)", () => { opt.zero_grad(); loss = nn.functional.cross_entropy(model.Logits(ids).view(-1, c.VocabSize), targets.view(-1)).DetachFromDisposeScope(); }, 1);
        double fwdLoss = results[^1].Ms;
        Time("step: forward + loss + backward", () => { opt.zero_grad(); nn.functional.cross_entropy(model.Logits(ids).view(-1, c.VocabSize), targets.view(-1)).backward(); }, reps);
        Time("step: optimizer", () => opt.step(), reps);
        loss?.Dispose();
        opt.Dispose();
        if (dtype == "mixed") MixedSections(model, ids, targets, c.VocabSize, reps, results);
        foreach (var (name, ms) in results) Console.WriteLine($"    {name,-34} {ms,10:F2}");
        Console.WriteLine($"    backward alone ≈ {results.First(r => r.Name == "step: forward + loss + backward").Ms - fwdLoss:F2} ms");
    }

    /// <summary>The float32 master work of a mixed-precision step, each part timed alone after an untimed backward:
    /// the bf16 gradients into the masters, AdamW on the masters, the masters back into the bf16 model.</summary>
    static void MixedSections(CausalLanguageModel model, Tensor ids, Tensor targets, long vocab, int reps, List<(string Name, double Ms)> results)
    {
        using var mixed = MixedPrecision.Over([model], allTrained: true); // the model is bf16 already: its masters are its values, which is all a timing needs
        using var opt = optim.AdamW(mixed.Masters, 1e-4);
        var parts = new (string Name, Action Run)[]
        {
            ("mixed: zero master gradients", () => opt.zero_grad()),
            ("mixed: bf16 gradients into masters", mixed.AccumulateGradients),
            ("mixed: AdamW on float32 masters", () => opt.step()),
            ("mixed: masters into bf16 model", mixed.MastersToModels),
        };
        var ms = new double[parts.Length];
        for (int r = 0; r <= reps; r++)
        {
            using (NewDisposeScope()) nn.functional.cross_entropy(model.Logits(ids).view(-1, vocab).to(ScalarType.Float32), targets.view(-1)).backward();
            for (int i = 0; i < parts.Length; i++)
            {
                var sw = Stopwatch.StartNew();
                using (NewDisposeScope()) parts[i].Run();
                if (r > 0) ms[i] += sw.Elapsed.TotalMilliseconds / reps; // the first round warms up
            }
        }
        for (int i = 0; i < parts.Length; i++) results.Add((parts[i].Name, ms[i]));
    }

    /// <summary>GFLOP/s of each forward matmul shape, fp32 and bf16 (bench/pytorch/shapes.py prints PyTorch's).</summary>
    static void ShapeTable(Size s)
    {
        var c = s.Text;
        long bt = s.Batch * s.Seq, h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
        var linears = new (string Name, long In, long Out)[]
        {
            ("q_proj", h, q), ("k_proj", h, kv), ("o_proj", q, h), ("gate/up", h, c.IntermediateSize), ("down", c.IntermediateSize, h), ("lm_head", h, c.VocabSize),
        };
        using var region = new NoGcRegion();
        foreach (var t in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            void Bench(string name, Func<Tensor> f, double flops)
            {
                using (NewDisposeScope()) f();
                double best = 0;
                for (int i = 0; i < 3; i++)
                {
                    region.Boundary();
                    var sw = Stopwatch.StartNew();
                    using (NewDisposeScope()) f();
                    best = Math.Max(best, flops / sw.Elapsed.TotalSeconds / 1e9);
                }
                Console.WriteLine($"{(t == ScalarType.Float32 ? "float32" : "bfloat16"),-9} {name,-26} {best,7:F1} GFLOP/s");
            }
            using var scope = NewDisposeScope();
            var sq = randn(2048, 2048).to(t);
            Bench("square 2048", () => sq.matmul(sq), 2.0 * Math.Pow(2048, 3));
            foreach (var (name, i, o) in linears)
            {
                var x = randn(bt, i).to(t);
                var w = randn(o, i).to(t);
                var g = randn(bt, o).to(t);
                Bench($"{name} {bt}x{i}x{o}", () => nn.functional.linear(x, w), 2.0 * bt * i * o);
                Bench("  grad x = g.W", () => g.matmul(w), 2.0 * bt * i * o);
                Bench("  grad W = g^T.x", () => g.t().matmul(x), 2.0 * bt * i * o);
                if (name == "q_proj")
                {
                    var bias = randn(o).to(t);
                    var x3 = x.view(s.Batch, s.Seq, i);
                    Bench("  with bias", () => nn.functional.linear(x, w, bias), 2.0 * bt * i * o);
                    Bench("  with bias, [B, T, in] input", () => nn.functional.linear(x3, w, bias), 2.0 * bt * i * o);
                }
            }
            long bh = s.Batch * c.NumAttentionHeads;
            var qs = randn(bh, s.Seq, c.HeadDim).to(t);
            var kt = randn(bh, c.HeadDim, s.Seq).to(t);
            var pr = randn(bh, s.Seq, s.Seq).to(t);
            Bench($"q.k^T {bh}x{s.Seq}x{c.HeadDim}x{s.Seq}", () => qs.matmul(kt), 2.0 * bh * s.Seq * s.Seq * c.HeadDim);
            Bench($"p.v {bh}x{s.Seq}x{s.Seq}x{c.HeadDim}", () => pr.matmul(qs), 2.0 * bh * s.Seq * s.Seq * c.HeadDim);
        }
    }

    static string Table(List<Row> rows)
    {
        static string Spread(IEnumerable<double> xs, string fmt)
        {
            var v = xs.Order().ToArray();
            if (v.Length == 0) return "–";
            double med = v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
            return v.Length == 1 ? med.ToString(fmt) : $"{med.ToString(fmt)} [{v[0].ToString(fmt)}–{v[^1].ToString(fmt)}]";
        }
        var sb = new StringBuilder();
        sb.AppendLine("median [min–max] over repeats; MFU = train tok/s x 3 x FLOP/token / peak of the same repeat (fp32 rows: fp32 2048² peak; bf16 and mixed rows: bf16 2048² peak)");
        sb.AppendLine("| size | dtype | threads | fp32 peak GFLOP/s | bf16 peak | model-shape peak | fwd tok/s | train tok/s | train MFU | train MFU vs model shapes | PyTorch fwd | PyTorch train | ratio fwd | ratio train |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            var peak = Bf16Compute(r.Dtype) ? r.PeakBf16 : r.PeakF32;
            var mfu = r.Ours.Select((a, i) => Mfu(r, a.Train, 3, peak[i]) * 100);
            var mfuShapes = r.Ours.Select((a, i) => Mfu(r, a.Train, 3, r.PeakShapes[i]) * 100);
            int n = Math.Min(r.Ours.Count, r.Theirs.Count);
            sb.AppendLine($"| {r.Size} | {r.Dtype} | {r.Threads} | {Spread(r.PeakF32, "F0")} | {Spread(r.PeakBf16, "F0")} | {Spread(r.PeakShapes, "F0")} | {Spread(r.Ours.Select(a => a.Fwd), "N0")} | {Spread(r.Ours.Select(a => a.Train), "N0")} | {Spread(mfu, "F0")} % | {Spread(mfuShapes, "F0")} % | {Spread(r.Theirs.Select(a => a.Fwd), "N0")} | {Spread(r.Theirs.Select(a => a.Train), "N0")} | {Spread(Enumerable.Range(0, n).Select(i => r.Ours[i].Fwd / r.Theirs[i].Fwd), "F2")} | {Spread(Enumerable.Range(0, n).Select(i => r.Ours[i].Train / r.Theirs[i].Train), "F2")} |");
        }
        // bf16 and mixed over fp32, repeat by repeat (the dtypes alternate inside each repeat)
        foreach (var g in rows.GroupBy(r => (r.Size, r.Threads)))
        foreach (var other in new[] { "bf16", "mixed" })
        {
            var f = g.FirstOrDefault(r => r.Dtype == "fp32");
            var h = g.FirstOrDefault(r => r.Dtype == other);
            if (f is null || h is null) continue;
            int n = Math.Min(f.Ours.Count, h.Ours.Count);
            sb.AppendLine($"{other} / fp32, {g.Key.Size}, {g.Key.Threads} thread(s): ours train {Spread(Enumerable.Range(0, n).Select(i => h.Ours[i].Train / f.Ours[i].Train), "F2")}, fwd {Spread(Enumerable.Range(0, n).Select(i => h.Ours[i].Fwd / f.Ours[i].Fwd), "F2")}"
                + (f.Theirs.Count > 0 && h.Theirs.Count > 0 ? $"; PyTorch train {Spread(Enumerable.Range(0, Math.Min(f.Theirs.Count, h.Theirs.Count)).Select(i => h.Theirs[i].Train / f.Theirs[i].Train), "F2")}" : ""));
        }
        return sb.ToString();
    }

    static string Load() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    static string FindScript()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "bench", "pytorch", "decoder.py")))
                    return Path.Combine(d.FullName, "bench", "pytorch", "decoder.py");
        throw new FileNotFoundException("bench/pytorch/decoder.py not found above the working directory");
    }
}
