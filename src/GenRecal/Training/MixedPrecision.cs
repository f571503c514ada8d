using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>
/// bf16 mixed precision without autocast (TorchSharp 0.107 has none): the models compute in bf16, the optimizer owns
/// float32 master copies of the trainable weights. After each backward the bf16 gradients are moved into float32 master
/// gradients (clipping and AdamW's moments stay float32), and after each optimizer step the masters are rounded back
/// into the bf16 weights. Norms, softmax and the losses already compute in float32 (RMSNorm, attention, DistillationLosses).
/// Weights are found by name at every use, because casting a module (before a checkpoint is saved) replaces its tensors.
/// </summary>
public sealed class MixedPrecision : IDisposable
{
    public const string Bf16 = "bf16", Fp32 = "fp32";
    readonly Func<IReadOnlyDictionary<string, Parameter>> current;
    readonly Dictionary<string, Parameter> masters;
    readonly Dictionary<string, Tensor> frozen;
    readonly Dictionary<string, Tensor>[] buffers;
    readonly nn.Module[] modules;

    /// <param name="trainable">names of the trained weights, as <paramref name="current"/> lists them</param>
    /// <param name="current">every weight of the cast modules by name, as they are now: create this from the float32
    /// weights (then <see cref="AsBf16"/>), so the masters start exact and the frozen weights come back exact</param>
    /// <param name="modules">the modules <see cref="AsBf16"/> and <see cref="AsFloat32"/> cast</param>
    public MixedPrecision(IEnumerable<string> trainable, Func<IReadOnlyDictionary<string, Parameter>> current, params nn.Module[] modules)
    {
        this.current = current;
        this.modules = modules;
        var now = current();
        using var noGrad = no_grad();
        Tensor Float32Copy(Tensor t) => t.detach().to(ScalarType.Float32).clone().DetachFromDisposeScope();
        masters = trainable.ToDictionary(n => n, n =>
        {
            var m = new Parameter(Float32Copy(now[n]));
            m.DetachFromDisposeScope();
            return m;
        });
        // the weights nobody trains: a cast to bf16 and back would round them, and frozen means unchanged to the bit
        frozen = modules.Length == 0 ? [] : now.Where(kv => !masters.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => Float32Copy(kv.Value));
        // floating buffers (Qwen2-VL's vision rotary frequencies) are cast with the module too, and put back the same way
        buffers = modules.Select(m => m.named_buffers().Where(b => b.buffer.is_floating_point())
            .ToDictionary(b => b.name, b => Float32Copy(b.buffer))).ToArray();
    }

    /// <summary>The frozen teacher under <paramref name="config"/>: with dtype bf16, a teacher whose checkpoint holds BF16
    /// weights computes in BF16 (a lossless cast: its values are BF16 already); otherwise it stays float32.</summary>
    public static void CastFrozenTeacher(Models.PretrainedModel teacher, TrainingConfig config)
    {
        if (config.Dtype == Bf16 && teacher.StoredDtype == ScalarType.BFloat16) teacher.Model.to(ScalarType.BFloat16);
    }

    /// <summary>Mixed precision over every weight of <paramref name="modules"/>, those with requires_grad (or all, with
    /// <paramref name="allTrained"/>) mastered and the rest kept as frozen copies: taken from the weights as they are,
    /// then the modules cast to bf16.</summary>
    public static MixedPrecision Over(IReadOnlyList<nn.Module> modules, bool allTrained = false)
    {
        // names prefixed by the module's position: two modules may name a weight alike
        IReadOnlyDictionary<string, Parameter> Weights() => modules
            .SelectMany((m, i) => m.named_parameters().Select(p => (Name: $"{i}/{p.name}", p.parameter)))
            .ToDictionary(p => p.Name, p => p.parameter);
        var mixed = new MixedPrecision(Weights().Where(p => allTrained || p.Value.requires_grad).Select(p => p.Key).ToList(), Weights, [.. modules]);
        mixed.AsBf16();
        return mixed;
    }

    /// <summary>The float32 weights the optimizer updates.</summary>
    public IReadOnlyList<Parameter> Masters => masters.Values.ToList();

    /// <summary>Adds each bf16 gradient into its master's float32 gradient and zeroes the bf16 one, so micro-batches of
    /// an accumulated step sum in float32 (the optimizer's zero_grad clears the masters' at the start of a step).</summary>
    public void AccumulateGradients()
    {
        var now = current();
        using var noGrad = no_grad();
        foreach (var (name, master) in masters)
        {
            using var g = now[name].grad;
            if (g is null) continue;
            using var g32 = g.to(ScalarType.Float32);
            using var mg = master.grad;
            if (mg is null) master.grad = g32.clone().DetachFromDisposeScope();
            else mg.add_(g32);
            g.zero_();
        }
    }

    /// <summary>Rounds the updated masters into the models' bf16 weights.</summary>
    public void MastersToModels()
    {
        var now = current();
        using var noGrad = no_grad();
        foreach (var (name, master) in masters) now[name].copy_(master);
    }

    /// <summary>Casts the modules to bf16 for compute (their weights become new tensors; the masters stay float32).</summary>
    public void AsBf16()
    {
        foreach (var m in modules) m.to(ScalarType.BFloat16);
    }

    /// <summary>Casts the modules to float32 and copies the exact masters and the untouched frozen weights into them: what
    /// a checkpoint saves (so a resumed run continues from the masters) and what a stage leaves (not the bf16 rounding).</summary>
    public void AsFloat32()
    {
        foreach (var m in modules) m.to(ScalarType.Float32);
        var now = current();
        using (no_grad())
        {
            foreach (var (name, original) in frozen) now[name].copy_(original);
            for (int i = 0; i < modules.Length; i++)
                foreach (var (name, buffer) in modules[i].named_buffers())
                    if (buffers[i].TryGetValue(name, out var original)) buffer.copy_(original);
        }
        MastersToModels();
    }

    public void Dispose()
    {
        foreach (var m in masters.Values) m.Dispose();
        foreach (var t in frozen.Values.Concat(buffers.SelectMany(b => b.Values))) t.Dispose();
    }
}
