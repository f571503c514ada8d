using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// Vision encoder: InternViT (OpenGVLab InternVL modeling_intern_vit.py) with its key names:
/// vision_model.embeddings.{class_embedding, patch_embedding, position_embedding},
/// vision_model.encoder.layers.{i}.{norm1, attn.qkv, attn.q_norm, attn.k_norm, attn.proj, ls1, norm2, mlp.fc1, mlp.fc2, ls2}.
/// The options (class token, layer scale, qk-norm, RMS norms, qkv bias) are off for the project's own encoder,
/// which is the plain pre-norm ViT the demo models use. Output: patch features of the selected layer, class token dropped.
/// </summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    public readonly VisionEmbeddings embeddings;
    public readonly VisionEncoder encoder;

    readonly VisionConfig config;

    public VisionTransformer(VisionConfig c) : base(nameof(VisionTransformer))
    {
        config = c;
        embeddings = new VisionEmbeddings(c);
        encoder = new VisionEncoder(c);
        RegisterComponents();
    }

    /// <summary>pixel values [N, C, H, W] → patch features [N, P, D] of the selected layer (class token dropped).</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var h = encoder.Forward(embeddings.forward(pixels), config.LayersUsed);
        if (config.ClassToken) h = h[.., 1..];
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class VisionEmbeddings : nn.Module<Tensor, Tensor>
{
    public readonly Parameter? class_embedding;
    public readonly Conv2d patch_embedding;
    public readonly Parameter position_embedding;
    readonly int grid;

    public VisionEmbeddings(VisionConfig c) : base(nameof(VisionEmbeddings))
    {
        grid = c.PositionGrid;
        if (c.ClassToken) class_embedding = new Parameter(randn(1, 1, c.HiddenSize) * 0.02);
        patch_embedding = nn.Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize);
        position_embedding = new Parameter(randn(1, (c.ClassToken ? 1 : 0) + grid * grid, c.HiddenSize) * 0.02);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = patch_embedding.forward(pixels);  // [N, D, h, w]
        long h = x.shape[2], w = x.shape[3];
        x = x.flatten(2).transpose(1, 2);         // [N, h*w, D]
        Tensor positions;
        if (class_embedding is not null)
        {
            x = cat([class_embedding.expand(x.shape[0], -1, -1).to(x.dtype), x], 1); // [N, 1+h*w, D]
            positions = cat([position_embedding[.., ..1], Grid(position_embedding[.., 1..], h, w)], 1);
        }
        else positions = Grid(position_embedding, h, w);
        return (x + positions.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>The patch positions for an h×w grid: stored as grid×grid, resized bicubically (align_corners false,
    /// in float32) when the grid differs, as InternViT's _get_pos_embed does.</summary>
    Tensor Grid(Tensor patchPositions, long h, long w)
    {
        if (h == grid && w == grid) return patchPositions;
        var d = patchPositions.shape[2];
        var p = patchPositions.to(ScalarType.Float32).reshape(1, grid, grid, d).permute(0, 3, 1, 2);                  // [1, D, g, g]
        p = nn.functional.interpolate(p, size: [h, w], mode: InterpolationMode.Bicubic, align_corners: false); // [1, D, h, w]
        return p.reshape(1, d, h * w).permute(0, 2, 1);                                                             // [1, h*w, D]
    }
}

public sealed class VisionEncoder : nn.Module<Tensor, Tensor>
{
    public readonly ModuleList<VisionBlock> layers;

    public VisionEncoder(VisionConfig c) : base(nameof(VisionEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new VisionBlock(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, layers.Count);

    /// <summary>The output of the first <paramref name="count"/> layers.</summary>
    public Tensor Forward(Tensor x, int count)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < count; i++) x = layers[i].forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>x + ls1·attn(norm1(x)); x + ls2·mlp(norm2(x)) with bidirectional attention (no layer scale: ls = 1).</summary>
public sealed class VisionBlock : nn.Module<Tensor, Tensor>
{
    public readonly nn.Module<Tensor, Tensor> norm1, norm2;
    public readonly VisionAttention attn;
    public readonly VisionMlp mlp;
    public readonly Parameter? ls1, ls2;

    public VisionBlock(VisionConfig c) : base(nameof(VisionBlock))
    {
        norm1 = Norm(c, c.HiddenSize);
        attn = new VisionAttention(c);
        norm2 = Norm(c, c.HiddenSize);
        mlp = new VisionMlp(c.HiddenSize, c.IntermediateSize);
        if (c.LayerScale)
        {
            ls1 = new Parameter(ones(c.HiddenSize));
            ls2 = new Parameter(ones(c.HiddenSize));
        }
        RegisterComponents();
    }

    internal static nn.Module<Tensor, Tensor> Norm(VisionConfig c, int size) =>
        c.NormType == "rms_norm" ? new GenRecal.Modules.RMSNorm(size, c.LayerNormEps) : nn.LayerNorm(size, c.LayerNormEps);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = attn.forward(norm1.forward(x));
        var h = x + (ls1 is null ? a : a * ls1);
        var m = mlp.forward(norm2.forward(h));
        return (h + (ls2 is null ? m : m * ls2)).MoveToOuterDisposeScope();
    }
}

public sealed class VisionAttention : nn.Module<Tensor, Tensor>
{
    readonly int heads;
    public readonly Linear qkv, proj;
    public readonly nn.Module<Tensor, Tensor>? q_norm, k_norm;

    public VisionAttention(VisionConfig c) : base(nameof(VisionAttention))
    {
        heads = c.NumAttentionHeads;
        int dim = c.HiddenSize;
        qkv = nn.Linear(dim, dim * 3, hasBias: c.QkvBias);
        if (c.QkNormalization)
        {
            q_norm = new GenRecal.Modules.RMSNorm(dim, c.LayerNormEps);
            k_norm = new GenRecal.Modules.RMSNorm(dim, c.LayerNormEps);
        }
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], p = x.shape[1], d = x.shape[2], hd = d / heads;
        var qkvOut = qkv.forward(x).view(n, p, 3, heads, hd).permute(2, 0, 3, 1, 4); // [3, N, H, P, hd]
        var (q, k, v) = (qkvOut[0], qkvOut[1], qkvOut[2]);
        if (q_norm is not null && k_norm is not null)
        {
            // InternViT normalises q and k over the full width (all heads together), then splits them again
            q = q_norm.forward(q.transpose(1, 2).flatten(-2)).view(n, p, heads, hd).transpose(1, 2);
            k = k_norm.forward(k.transpose(1, 2).flatten(-2)).view(n, p, heads, hd).transpose(1, 2);
        }
        var probs = (q.matmul(k.transpose(2, 3)) / Math.Sqrt(hd)).softmax(-1);      // [N, H, P, P]
        var o = probs.matmul(v).transpose(1, 2).reshape(n, p, d);                    // [N, P, D]
        return proj.forward(o).MoveToOuterDisposeScope();
    }
}

public sealed class VisionMlp : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1, fc2;

    public VisionMlp(int dim, int hidden) : base(nameof(VisionMlp))
    {
        fc1 = nn.Linear(dim, hidden);
        fc2 = nn.Linear(hidden, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}
