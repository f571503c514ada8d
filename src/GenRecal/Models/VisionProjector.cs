using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// InternVL's projector: pixel shuffle (each k×k block of patches becomes one token with k²·D channels,
/// InternVL chat_model.pixel_shuffle) then mlp1 = LayerNorm, Linear, GELU, Linear to the LM width.
/// Keys mlp1.0 / mlp1.1 / mlp1.3 as in InternVL checkpoints.
/// </summary>
public static class VisionProjector
{
    public static nn.Module<Tensor, Tensor> CreateMlp(VisionConfig v, int lmHidden) => nn.Sequential(
        ("0", nn.LayerNorm(v.ProjectorInputSize)),
        ("1", nn.Linear(v.ProjectorInputSize, lmHidden)),
        ("2", nn.GELU()),
        ("3", nn.Linear(lmHidden, lmHidden)));

    /// <summary>[N, P, D] with P = s×s patches → [N, (s/k)², k²·D]. Version "v2" ends with InternVL's extra transpose
    /// (what every released InternVL2+ checkpoint uses); "v1" leaves it out.</summary>
    public static Tensor PixelShuffle(Tensor x, int k, string version = "v2")
    {
        if (k == 1) return x.alias();
        using var scope = NewDisposeScope();
        long n = x.shape[0], s = (long)Math.Round(Math.Sqrt(x.shape[1])), d = x.shape[2];
        var h = x.reshape(n, s, s, d);                  // [N, s(w), s(h), D]
        h = h.reshape(n, s, s / k, d * k);              // [N, w, h/k, kD]
        h = h.permute(0, 2, 1, 3).contiguous();         // [N, h/k, w, kD]
        h = h.reshape(n, s / k, s / k, d * k * k);      // [N, h/k, w/k, k²D]
        if (version == "v2") h = h.permute(0, 2, 1, 3).contiguous(); // [N, w/k, h/k, k²D]
        return h.reshape(n, (s / k) * (s / k), d * k * k).MoveToOuterDisposeScope(); // [N, T_img, k²D]
    }
}
