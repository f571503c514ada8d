using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Models;

/// <summary>
/// Vision encoder: a plain ViT with pre-norm blocks and GELU MLP, key names after InternViT
/// (OpenGVLab InternVL modeling_intern_vit.py): vision_model.embeddings.{patch_embedding, position_embedding},
/// vision_model.encoder.layers.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}. No CLS token.
/// </summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    public readonly VisionEmbeddings embeddings;
    public readonly VisionEncoder encoder;

    public VisionTransformer(VisionConfig c) : base(nameof(VisionTransformer))
    {
        embeddings = new VisionEmbeddings(c);
        encoder = new VisionEncoder(c);
        RegisterComponents();
    }

    /// <summary>pixel values [N, C, H, W] → patch features [N, P, D].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return encoder.forward(embeddings.forward(pixels)).MoveToOuterDisposeScope();
    }
}

public sealed class VisionEmbeddings : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d patch_embedding;
    public readonly Parameter position_embedding;

    public VisionEmbeddings(VisionConfig c) : base(nameof(VisionEmbeddings))
    {
        patch_embedding = nn.Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize);
        position_embedding = new Parameter(randn(1, c.PatchesPerSide * c.PatchesPerSide, c.HiddenSize) * 0.02);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = patch_embedding.forward(pixels);  // [N, D, h, w]
        x = x.flatten(2).transpose(1, 2);         // [N, h*w, D]
        return (x + position_embedding).MoveToOuterDisposeScope();
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

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in layers) x = layer.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>x + attn(norm1(x)); x + mlp(norm2(x)) with bidirectional attention.</summary>
public sealed class VisionBlock : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm norm1, norm2;
    public readonly VisionAttention attn;
    public readonly VisionMlp mlp;

    public VisionBlock(VisionConfig c) : base(nameof(VisionBlock))
    {
        norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        attn = new VisionAttention(c.HiddenSize, c.NumAttentionHeads);
        norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new VisionMlp(c.HiddenSize, c.IntermediateSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.forward(norm1.forward(x));
        return (h + mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}

public sealed class VisionAttention : nn.Module<Tensor, Tensor>
{
    readonly int heads;
    public readonly Linear qkv, proj;

    public VisionAttention(int dim, int heads) : base(nameof(VisionAttention))
    {
        this.heads = heads;
        qkv = nn.Linear(dim, dim * 3);
        proj = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], p = x.shape[1], d = x.shape[2], hd = d / heads;
        var qkvOut = qkv.forward(x).view(n, p, 3, heads, hd).permute(2, 0, 3, 1, 4); // [3, N, H, P, hd]
        var (q, k, v) = (qkvOut[0], qkvOut[1], qkvOut[2]);
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
