using GenRecal.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Models.Families.Qwen2VL;

/// <summary>
/// The Qwen2-VL / Qwen2.5-VL vision encoder (transformers modeling_qwen2_vl.py Qwen2VisionTransformerPretrainedModel,
/// modeling_qwen2_5_vl.py Qwen2_5_VisionTransformerPretrainedModel) without its merger: a patch embedding (Conv3d
/// with kernel = stride = the patch, i.e. a linear map of each flattened patch), 2-D rotary positions (height and
/// width of each patch), and pre-norm blocks attending within each image (Qwen2.5-VL: within windows, except the
/// full-attention blocks). Field names are the checkpoint's, under visual.*.
/// </summary>
internal sealed class Qwen2VisionEncoder : nn.Module
{
    readonly Qwen2VlSettings s;
    public readonly Qwen2PatchEmbed patch_embed;
    public readonly ModuleList<Qwen2VisionBlock> blocks;
    readonly Tensor invFreq; // [headDim/4]: VisionRotaryEmbedding(head_dim // 2)

    public Qwen2VisionEncoder(Qwen2VlSettings s) : base(nameof(Qwen2VisionEncoder))
    {
        this.s = s;
        patch_embed = new Qwen2PatchEmbed(s);
        blocks = nn.ModuleList(Enumerable.Range(0, s.Depth).Select(_ => new Qwen2VisionBlock(s)).ToArray());
        int dim = s.Width / s.Heads / 2;
        invFreq = (1.0 / pow(10000.0, arange(0, dim, 2, ScalarType.Float32) / dim)).to(ScalarType.Float32);
        invFreq.DetachFromDisposeScope();
        RegisterComponents();
    }

    /// <summary>Patch sequence [P, C·t·p·p] of images with <paramref name="grids"/> → features [P, width] in the
    /// processor's order (merge windows of merge² consecutive patches), and the window order used (null without windows).</summary>
    public (Tensor Hidden, long[]? WindowOrder) Forward(Tensor pixels, IReadOnlyList<ImageGrid> grids)
    {
        using var scope = NewDisposeScope();
        var h = patch_embed.forward(pixels);                                    // [P, D]
        var rope = RotaryAngles(grids);                                         // [P, hd/2]
        var full = Segments(grids.SelectMany(g => Enumerable.Repeat(g.H * g.W, g.T)));
        long[]? order = null;
        List<int>? windows = null;
        if (s.Version25)
        {
            (order, windows) = WindowIndex(grids);
            int unit = s.MergeSize * s.MergeSize;
            var idx = tensor(order);
            h = h.view(-1, unit, h.shape[1]).index_select(0, idx).view(-1, h.shape[1]);
            rope = rope.view(-1, unit, rope.shape[1]).index_select(0, idx).view(-1, rope.shape[1]);
        }
        var emb = cat([rope, rope], -1);
        var (cos, sin) = (emb.cos(), emb.sin());
        for (int i = 0; i < blocks.Count; i++)
        {
            var segments = windows is not null && !s.FullAttentionBlocks.Contains(i) ? windows : full;
            h = blocks[i].Forward(h, cos, sin, segments);
        }
        return (h.MoveToOuterDisposeScope(), order);
    }

    static List<int> Segments(IEnumerable<int> lengths) => lengths.ToList();

    /// <summary>rot_pos_emb: each patch's (row, col) in its image, ordered like the patch sequence, times the inverse
    /// frequencies; [P, headDim/2] (row angles then column angles).</summary>
    Tensor RotaryAngles(IReadOnlyList<ImageGrid> grids)
    {
        using var scope = NewDisposeScope();
        int m = s.MergeSize;
        var rows = new List<long>();
        var cols = new List<long>();
        foreach (var g in grids)
            for (int t = 0; t < g.T; t++)
                for (int bh = 0; bh < g.H / m; bh++)
                    for (int bw = 0; bw < g.W / m; bw++)
                        for (int ih = 0; ih < m; ih++)
                            for (int iw = 0; iw < m; iw++)
                            {
                                rows.Add(bh * m + ih);
                                cols.Add(bw * m + iw);
                            }
        var r = tensor(rows.ToArray()).to(ScalarType.Float32).unsqueeze(1) * invFreq; // [P, hd/4]
        var c = tensor(cols.ToArray()).to(ScalarType.Float32).unsqueeze(1) * invFreq;
        return cat([r, c], 1).MoveToOuterDisposeScope();                              // [P, hd/2]
    }

    /// <summary>Qwen2.5-VL's get_window_index: merge units regrouped window by window (windows of
    /// window_size / merge / patch units per side, row-major), and the patch count of each non-empty window.</summary>
    (long[] Order, List<int> Windows) WindowIndex(IReadOnlyList<ImageGrid> grids)
    {
        int win = s.WindowSize / s.MergeSize / s.PatchSize, unit = s.MergeSize * s.MergeSize;
        if (win < 1) throw new InvalidDataException($"window_size {s.WindowSize} is smaller than one merge unit ({s.MergeSize * s.PatchSize} pixels)");
        var order = new List<long>();
        var windows = new List<int>();
        long offset = 0;
        foreach (var g in grids)
        {
            int lh = g.H / s.MergeSize, lw = g.W / s.MergeSize;
            for (int t = 0; t < g.T; t++)
                for (int wy = 0; wy * win < lh; wy++)
                    for (int wx = 0; wx * win < lw; wx++)
                    {
                        int count = 0;
                        for (int y = wy * win; y < Math.Min(lh, (wy + 1) * win); y++)
                            for (int x = wx * win; x < Math.Min(lw, (wx + 1) * win); x++, count++)
                                order.Add(offset + (long)t * lh * lw + y * lw + x);
                        windows.Add(count * unit);
                    }
            offset += (long)g.T * lh * lw;
        }
        return (order.ToArray(), windows);
    }
}

/// <summary>PatchEmbed: Conv3d over (temporal, patch, patch) with stride equal to its kernel and no bias, on inputs
/// exactly one kernel in size: a linear map of each flattened patch. Weight [D, C, t, p, p] as in the checkpoint.</summary>
internal sealed class Qwen2PatchEmbed : nn.Module<Tensor, Tensor>
{
    public readonly Conv3d proj;

    public Qwen2PatchEmbed(Qwen2VlSettings s) : base(nameof(Qwen2PatchEmbed))
    {
        var kernel = (s.TemporalPatchSize, s.PatchSize, (long)s.PatchSize);
        proj = nn.Conv3d(s.InChannels, s.Width, kernel, stride: kernel, bias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor patches) =>
        nn.functional.linear(patches, proj.weight!.reshape(proj.weight.shape[0], -1)); // [P, D]
}

/// <summary>x + attn(norm1(x)); x + mlp(norm2(x)). Qwen2-VL: LayerNorm and fc1/QuickGELU/fc2; Qwen2.5-VL: RMSNorm and a
/// SwiGLU MLP (gate/up/down with biases).</summary>
internal sealed class Qwen2VisionBlock : nn.Module
{
    public readonly nn.Module<Tensor, Tensor> norm1, norm2;
    public readonly Qwen2VisionAttention attn;
    public readonly nn.Module<Tensor, Tensor> mlp;

    public Qwen2VisionBlock(Qwen2VlSettings s) : base(nameof(Qwen2VisionBlock))
    {
        norm1 = Norm(s, s.Width);
        norm2 = Norm(s, s.Width);
        attn = new Qwen2VisionAttention(s.Width, s.Heads);
        mlp = s.Version25 ? new Qwen25VisionMlp(s) : new Qwen2VisionMlp(s);
        RegisterComponents();
    }

    internal static nn.Module<Tensor, Tensor> Norm(Qwen2VlSettings s, int size) =>
        s.Version25 ? new RMSNorm(size, 1e-6) : nn.LayerNorm(size, 1e-6);

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, IReadOnlyList<int> segments)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.Forward(norm1.forward(x), cos, sin, segments);
        return (h + mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>Packed-qkv attention with 2-D rotary positions (float32, rotate_half), bidirectional within each segment.</summary>
internal sealed class Qwen2VisionAttention : nn.Module
{
    readonly int heads;
    public readonly Linear qkv, proj;

    public Qwen2VisionAttention(int dim, int heads) : base(nameof(Qwen2VisionAttention))
    {
        this.heads = heads;
        qkv = nn.Linear(dim, dim * 3, hasBias: true);
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, IReadOnlyList<int> segments)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], d = x.shape[1], hd = d / heads;
        var parts = qkv.forward(x).reshape(n, 3, heads, hd).permute(1, 0, 2, 3);      // [3, P, H, hd]
        var c = cos.unsqueeze(1);                                                     // [P, 1, hd]
        var sn = sin.unsqueeze(1);
        var q = Rotate(parts[0].to(ScalarType.Float32), c, sn).to(x.dtype);
        var k = Rotate(parts[1].to(ScalarType.Float32), c, sn).to(x.dtype);
        var v = parts[2];
        var outputs = new List<Tensor>();
        long start = 0;
        foreach (var len in segments)
        {
            if (len == 0) continue;
            var qs = q.narrow(0, start, len).transpose(0, 1);                          // [H, L, hd]
            var ks = k.narrow(0, start, len).transpose(0, 1);
            var vs = v.narrow(0, start, len).transpose(0, 1);
            var probs = (qs.matmul(ks.transpose(1, 2)) * Math.Pow(hd, -0.5)).softmax(-1, ScalarType.Float32).to(qs.dtype);
            outputs.Add(probs.matmul(vs).transpose(0, 1).reshape(len, d));             // [L, D]
            start += len;
        }
        if (start != n) throw new ArgumentException($"attention segments cover {start} of {n} patches");
        return proj.forward(cat(outputs.ToArray(), 0)).MoveToOuterDisposeScope();
    }

    static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }
}

/// <summary>Qwen2-VL's encoder MLP: fc1 → activation (quick_gelu: x·σ(1.702x)) → fc2.</summary>
internal sealed class Qwen2VisionMlp : nn.Module<Tensor, Tensor>
{
    readonly string act;
    public readonly Linear fc1, fc2;

    public Qwen2VisionMlp(Qwen2VlSettings s) : base(nameof(Qwen2VisionMlp))
    {
        act = s.HiddenAct;
        fc1 = nn.Linear(s.Width, s.MlpHidden);
        fc2 = nn.Linear(s.MlpHidden, s.Width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = fc1.forward(x);
        h = act == "quick_gelu" ? h * (h * 1.702).sigmoid() : nn.functional.gelu(h);
        return fc2.forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>Qwen2.5-VL's encoder MLP: down(act(gate(x)) · up(x)), all with biases.</summary>
internal sealed class Qwen25VisionMlp : nn.Module<Tensor, Tensor>
{
    public readonly Linear gate_proj, up_proj, down_proj;

    public Qwen25VisionMlp(Qwen2VlSettings s) : base(nameof(Qwen25VisionMlp))
    {
        gate_proj = nn.Linear(s.Width, s.MlpHidden);
        up_proj = nn.Linear(s.Width, s.MlpHidden);
        down_proj = nn.Linear(s.MlpHidden, s.Width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>PatchMerger: norm over each patch, then merge² consecutive patches concatenated → MLP (Linear, GELU, Linear)
/// to the LM width. Keys ln_q, mlp.0, mlp.2 (under visual.merger.*).</summary>
internal sealed class Qwen2PatchMerger : nn.Module<Tensor, Tensor>
{
    readonly int merged;
    public readonly nn.Module<Tensor, Tensor> ln_q;
    public readonly nn.Module<Tensor, Tensor> mlp;

    public Qwen2PatchMerger(Qwen2VlSettings s) : base(nameof(Qwen2PatchMerger))
    {
        merged = s.Width * s.MergeSize * s.MergeSize;
        ln_q = Qwen2VisionBlock.Norm(s, s.Width);
        mlp = nn.Sequential(("0", nn.Linear(merged, merged)), ("1", nn.GELU()), ("2", nn.Linear(merged, s.OutWidth)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return mlp.forward(ln_q.forward(x).view(-1, merged)).MoveToOuterDisposeScope();
    }
}
