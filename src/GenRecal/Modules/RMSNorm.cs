using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>Root-mean-square norm, computed in float32 (ported from transformers Qwen2RMSNorm).</summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    readonly double eps;
    public readonly Parameter weight;

    public RMSNorm(int size, double eps) : base(nameof(RMSNorm))
    {
        this.eps = eps;
        weight = new Parameter(ones(size));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var dtype = x.dtype;
        var h = x.to(ScalarType.Float32);
        var variance = h.pow(2).mean([-1L], keepdim: true);
        h = h * rsqrt(variance + eps);
        return (weight * h.to(dtype)).MoveToOuterDisposeScope();
    }
}
