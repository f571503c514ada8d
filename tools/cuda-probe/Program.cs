// Does TorchSharp 0.107 (built against LibTorch 2.10) run on CUDA against another PyTorch's libtorch? Each step prints
// what it found and goes on after a failure, so one run answers as much as it can. Run by tools/cuda-probe/run.sh.
using System.Diagnostics;
using GenRecal.Models;
using GenRecal.Runtime;
using TorchSharp;
using static TorchSharp.torch;

static void Step(string name, Action body)
{
    var sw = Stopwatch.StartNew();
    try { body(); Console.WriteLine($"[ok]   {name} ({sw.Elapsed.TotalSeconds:F1} s)"); }
    catch (Exception e) { Console.WriteLine($"[fail] {name}: {e.GetType().Name}: {e.GetBaseException().Message.Split('\n')[0]}"); }
}

Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}; loader mode {TorchRuntime.Mode}");
bool cuda = false;
Step("InitializeDeviceType(CUDA)", () => { InitializeDeviceType(DeviceType.CUDA); cuda = torch.cuda.is_available(); });
Console.WriteLine($"cuda.is_available={cuda} device_count={(cuda ? torch.cuda.device_count() : 0)}");
if (!cuda) return 1;

Step("elementwise + reduction on cuda", () =>
{
    using var a = arange(1000, dtype: float32, device: CUDA);
    double s = a.sum().cpu().item<float>();
    if (s != 499500) throw new Exception($"sum {s} != 499500");
});

foreach (var (dtype, n) in new[] { (bfloat16, 8192L), (float32, 8192L) })
    Step($"matmul {n}^3 {dtype}", () =>
    {
        using var scope = NewDisposeScope();
        var a = randn([n, n], dtype: dtype, device: CUDA);
        var b = randn([n, n], dtype: dtype, device: CUDA);
        for (int i = 0; i < 3; i++) a.matmul(b);
        torch.cuda.synchronize();
        var sw = Stopwatch.StartNew();
        const int reps = 10;
        for (int i = 0; i < reps; i++) a.matmul(b);
        torch.cuda.synchronize();
        Console.WriteLine($"       {2.0 * n * n * n * reps / sw.Elapsed.TotalSeconds / 1e12:F0} TFLOP/s");
    });

// The library's decoder at GPT-2 small's sizes (bench/GenRecal.Bench's "124m"), moved to the GPU as a whole.
var cfg = new LanguageModelConfig
{
    VocabSize = 50257, HiddenSize = 768, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 12,
    NumKeyValueHeads = 12, HeadDim = 64, RopeTheta = 10000, AttentionBias = true, TieWordEmbeddings = true,
};
Step("a left-padded batch whose padding mask the caller made on the CPU (the model moves it)", () =>
{
    manual_seed(0);
    using var model = new CausalLanguageModel(cfg with { NumHiddenLayers = 2 });
    using var ids = randint(0, cfg.VocabSize, [2, 16]);
    using var padding = ones(2, 16, int64);
    padding[1, ..4] = zeros(4, int64); // row 1: four padding tokens on the left
    using var cpuLogits = model.Logits(ids, padding);
    model.to(CUDA);
    using var cudaLogits = model.Logits(ids.to(CUDA), padding);
    double diff = (cudaLogits.cpu() - cpuLogits).abs().max().item<float>();
    if (diff > 1e-3) throw new Exception($"CUDA logits differ from the CPU's by {diff}");
    Console.WriteLine($"       max |cuda - cpu| logits {diff:g3}");
});

foreach (var dtype in new[] { float32, bfloat16 })
    Step($"GenRecal CausalLanguageModel 124M train step on cuda, {dtype}, batch 8 x 1024", () =>
    {
        manual_seed(0);
        using var model = new CausalLanguageModel(cfg);
        model.to(CUDA);
        if (dtype == bfloat16) model.to(bfloat16);
        using var opt = optim.AdamW(model.parameters(), 1e-4);
        using var ids = randint(0, cfg.VocabSize, [8, 1024], device: CUDA);
        void TrainStep()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var logits = model.Logits(ids);
            nn.functional.cross_entropy(logits.view(-1, cfg.VocabSize).to(float32), ids.view(-1)).backward();
            opt.step();
        }
        for (int i = 0; i < 3; i++) TrainStep();
        torch.cuda.synchronize();
        var sw = Stopwatch.StartNew();
        const int steps = 10;
        for (int i = 0; i < steps; i++) TrainStep();
        torch.cuda.synchronize();
        double tps = steps * ids.numel() / sw.Elapsed.TotalSeconds;
        double flops = 6.0 * model.CountParameters() + 12.0 * cfg.NumHiddenLayers * cfg.HiddenSize * 1024;
        Console.WriteLine($"       {tps:F0} tokens/s, {tps * flops / 1e12:F0} TFLOP/s (6N + attention per token)");
    });
return 0;
