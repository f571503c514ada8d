using GenRecal.Models;
using static TorchSharp.torch;

namespace GenRecal.Tests.Models;

/// <summary>
/// An independent forward pass of the Qwen2/LLaMA decoder in plain double-precision loops, written from
/// the architecture description (not from our modules): the reference the TorchSharp model is tested against.
/// </summary>
internal sealed class NaiveLanguageModel(LanguageModelConfig c, Dictionary<string, Tensor> w)
{
    double[][] M(string name)
    {
        var t = w[name].to(ScalarType.Float64);
        long rows = t.shape[0], cols = t.shape[1];
        var flat = t.data<double>().ToArray();
        return Enumerable.Range(0, (int)rows).Select(r => flat.AsSpan((int)(r * cols), (int)cols).ToArray()).ToArray();
    }

    double[] V(string name) => w[name].to(ScalarType.Float64).data<double>().ToArray();
    double[]? OptV(string name) => w.ContainsKey(name) ? V(name) : null;

    static double[] MatVec(double[][] m, double[] x, double[]? bias = null)
    {
        var y = new double[m.Length];
        for (int i = 0; i < m.Length; i++)
        {
            double s = bias?[i] ?? 0;
            for (int j = 0; j < x.Length; j++) s += m[i][j] * x[j];
            y[i] = s;
        }
        return y;
    }

    double[] Rms(double[] x, double[] g)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double r = 1 / Math.Sqrt(ms + c.RmsNormEps);
        return x.Select((v, i) => v * r * g[i]).ToArray();
    }

    void Rope(double[] v, int offset, int pos)
    {
        int d = c.HeadDim, half = d / 2;
        for (int i = 0; i < half; i++)
        {
            double angle = pos * Math.Pow(c.RopeTheta, -2.0 * i / d);
            double a = v[offset + i], b = v[offset + i + half];
            v[offset + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
            v[offset + i + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
    }

    /// <summary>Logits [T][V] for one sequence of ids (positions 0..T-1, causal).</summary>
    public double[][] Logits(int[] ids)
    {
        var emb = M("model.embed_tokens.weight");
        var x = ids.Select(i => (double[])emb[i].Clone()).ToArray();
        int T = ids.Length, H = c.NumAttentionHeads, KvH = c.NumKeyValueHeads, D = c.HeadDim;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var (wq, wk, wv, wo) = (M(p + "self_attn.q_proj.weight"), M(p + "self_attn.k_proj.weight"), M(p + "self_attn.v_proj.weight"), M(p + "self_attn.o_proj.weight"));
            var (bq, bk, bv) = (OptV(p + "self_attn.q_proj.bias"), OptV(p + "self_attn.k_proj.bias"), OptV(p + "self_attn.v_proj.bias"));
            var q = new double[T][]; var k = new double[T][]; var v = new double[T][];
            for (int t = 0; t < T; t++)
            {
                var h = Rms(x[t], V(p + "input_layernorm.weight"));
                q[t] = MatVec(wq, h, bq); k[t] = MatVec(wk, h, bk); v[t] = MatVec(wv, h, bv);
                for (int hh = 0; hh < H; hh++) Rope(q[t], hh * D, t);
                for (int hh = 0; hh < KvH; hh++) Rope(k[t], hh * D, t);
            }
            var next = new double[T][];
            for (int t = 0; t < T; t++)
            {
                var attn = new double[H * D];
                for (int hh = 0; hh < H; hh++)
                {
                    int kv = hh / (H / KvH);
                    var scores = new double[t + 1];
                    for (int s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (int d = 0; d < D; d++) dot += q[t][hh * D + d] * k[s][kv * D + d];
                        scores[s] = dot / Math.Sqrt(D);
                    }
                    double max = scores.Max(), z = scores.Sum(sc => Math.Exp(sc - max));
                    for (int s = 0; s <= t; s++)
                        for (int d = 0; d < D; d++) attn[hh * D + d] += Math.Exp(scores[s] - max) / z * v[s][kv * D + d];
                }
                var o = MatVec(wo, attn);
                var h1 = x[t].Select((val, i) => val + o[i]).ToArray();
                var n2 = Rms(h1, V(p + "post_attention_layernorm.weight"));
                var g = MatVec(M(p + "mlp.gate_proj.weight"), n2);
                var u = MatVec(M(p + "mlp.up_proj.weight"), n2);
                var act = g.Select((gv, i) => gv / (1 + Math.Exp(-gv)) * u[i]).ToArray();
                var down = MatVec(M(p + "mlp.down_proj.weight"), act);
                next[t] = h1.Select((val, i) => val + down[i]).ToArray();
            }
            x = next;
        }
        var head = w.ContainsKey("lm_head.weight") ? M("lm_head.weight") : emb;
        return x.Select(xt => MatVec(head, Rms(xt, V("model.norm.weight")))).ToArray();
    }
}
