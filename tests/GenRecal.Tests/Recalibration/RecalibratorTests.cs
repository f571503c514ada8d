using GenRecal.Modules;
using GenRecal.Recalibration;
using static TorchSharp.torch;

namespace GenRecal.Tests.Recalibration;

public class RecalibratorTests
{
    static Recalibrator Make(bool npe = true, int layers = 2)
    {
        manual_seed(5);
        var rec = new Recalibrator(new RecalibratorConfig { NumLayers = layers, NewPositions = npe }, TestSupport.TinyText(hidden: 16, heads: 2, kvHeads: 1), 24);
        rec.eval();
        return rec;
    }

    [Fact]
    public void Shapes_follow_the_paper_pre_body_post_norm()
    {
        var rec = Make();
        Assert.Equal(new long[] { 16, 24 }, rec.proj_pre.weight!.shape);
        Assert.Equal(new long[] { 24, 16 }, rec.proj_post.weight!.shape);
        Assert.Equal(2, rec.layers.Count);
        Assert.Equal(new long[] { 24 }, rec.norm.weight!.shape);
    }

    [Fact]
    public void A_padded_batch_gives_each_row_what_it_gets_alone()
    {
        var rec = Make();
        using var noGrad = no_grad();
        manual_seed(6);
        var q = randn(2, 5, 16);
        var a = rec.Project(randn(2, 4, 24));
        var pos = arange(0, 5, ScalarType.Int64).unsqueeze(0).expand(2, 5);
        var apos = arange(0, 4, ScalarType.Int64).unsqueeze(0).expand(2, 4);
        var batch = rec.Forward(q, [5, 3], pos, a, [2, 4], apos);                // [2, 4, 24]
        var row1 = rec.Forward(q[1..2, ..3], [3], pos[1..2, ..3], a[1..2], [4], apos[1..2]);
        var row0 = rec.Forward(q[0..1], [5], pos[0..1], a[0..1, ..2], [2], apos[0..1, ..2]);
        Assert.True(TestSupport.MaxAbsDiff(batch[1], row1[0]) < 1e-5);
        Assert.True(TestSupport.MaxAbsDiff(batch[0, ..2], row0[0]) < 1e-5);
    }

    [Fact]
    public void The_answer_part_sees_the_question_and_not_the_future()
    {
        var rec = Make();
        using var noGrad = no_grad();
        manual_seed(7);
        var q = randn(1, 3, 16);
        var a = randn(1, 4, 16);
        var pos = arange(0, 4, ScalarType.Int64).unsqueeze(0);
        var r = rec.Forward(q, [3], pos[.., ..3], a, [4], pos);
        var a2 = a.clone(); a2[0, 3] = randn(16);
        var rFuture = rec.Forward(q, [3], pos[.., ..3], a2, [4], pos);
        Assert.Equal(0, TestSupport.MaxAbsDiff(r[0, ..3], rFuture[0, ..3]), 6); // causal in the answer
        var rQuestion = rec.Forward(randn(1, 3, 16), [3], pos[.., ..3], a, [4], pos);
        Assert.True(TestSupport.MaxAbsDiff(r, rQuestion) > 1e-4);               // the student's question matters
    }

    [Fact]
    public void Npe_renumbers_positions_and_off_keeps_each_sides_own()
    {
        using var noGrad = no_grad();
        manual_seed(8);
        var q = randn(1, 3, 16);
        var a = randn(1, 2, 16);
        var qpos = arange(0, 3, ScalarType.Int64).unsqueeze(0);
        var apos = tensor(new long[] { 10, 11 }).unsqueeze(0); // the teacher's own positions
        var npe = Make(npe: true);
        var own = Make(npe: false);
        // with NPE the answer's own positions are ignored; without it they matter
        Assert.Equal(0, TestSupport.MaxAbsDiff(npe.Forward(q, [3], qpos, a, [2], apos), npe.Forward(q, [3], qpos, a, [2], apos + 50)), 6);
        Assert.True(TestSupport.MaxAbsDiff(own.Forward(q, [3], qpos, a, [2], apos), own.Forward(q, [3], qpos, a, [2], apos + 50)) > 1e-5);
        // NPE equals the no-NPE path given positions 0..L-1
        Assert.True(TestSupport.MaxAbsDiff(npe.Forward(q, [3], qpos, a, [2], apos), own.Forward(q, [3], qpos, a, [2], tensor(new long[] { 3, 4 }).unsqueeze(0))) < 1e-6);
    }

    [Fact]
    public void Save_and_load_round_trip()
    {
        var rec = Make(layers: 1);
        var dir = TestSupport.TempDir();
        rec.Save(dir);
        var back = Recalibrator.Load(dir);
        Assert.Equal(rec.Config, back.Config);
        foreach (var (name, p) in rec.named_parameters())
            Assert.Equal(p.bytes.ToArray(), back.named_parameters().First(x => x.name == name).parameter.bytes.ToArray());
    }

    /// <summary>What the Recalibrator computes, written plainly: one row at a time, question then answer as one causal
    /// sequence through every block, every row, then Proj-post and the norm on the answer part.</summary>
    static Tensor PlainRow(Recalibrator rec, Tensor q, Tensor qPos, Tensor a, Tensor aPos)
    {
        var x = cat([q, a], 0).unsqueeze(0);                                                   // [1, L, Ds]
        long l = x.shape[1];
        var pos = rec.Config.NewPositions ? arange(0, l, ScalarType.Int64).unsqueeze(0) : cat([qPos, aPos], 0).unsqueeze(0);
        var (cos, sin) = new RotaryEmbedding(rec.StudentBlock.HeadDim, rec.StudentBlock.RopeTheta).Compute(pos);
        var mask = AttentionMask.Causal(1, l, 0, null);
        for (int i = 0; i < rec.layers.Count; i++) x = rec.layers[i].Forward(x, cos, sin, mask, null, i);
        return rec.norm.forward(rec.proj_post.forward(x))[0].narrow(0, q.shape[0], a.shape[0]); // [La, Dt]
    }

    [Theory]
    [InlineData(true, 2)]
    [InlineData(false, 2)]
    [InlineData(true, 1)]
    public void Running_the_last_block_on_answer_rows_equals_running_every_block_on_every_row(bool npe, int layers)
    {
        var rec = Make(npe, layers);
        manual_seed(12);
        int[] qLen = [6, 2, 4], aLen = [1, 3, 2];
        var q = randn(3, 7, 16).requires_grad_();                                            // wider than the longest question
        var a = randn(3, 3, 16).requires_grad_();
        var qPos = randint(0, 30, [3, 7]);
        var aPos = randint(30, 60, [3, 3]);
        var w = randn(3, 3, 24);
        var batch = rec.Forward(q, qLen, qPos, a, aLen, aPos);                                 // [3, 3, 24]
        (batch * w).sum().backward();
        var (gq, ga) = (q.grad!.clone(), a.grad!.clone());
        q.grad!.zero_();
        a.grad!.zero_();
        Tensor plainLoss = zeros(1);
        for (int i = 0; i < 3; i++)
        {
            var row = PlainRow(rec, q[i].narrow(0, 0, qLen[i]), qPos[i].narrow(0, 0, qLen[i]), a[i].narrow(0, 0, aLen[i]), aPos[i].narrow(0, 0, aLen[i]));
            Assert.True(TestSupport.MaxAbsDiff(batch[i].narrow(0, 0, aLen[i]), row) < 1e-5, $"row {i}");
            Assert.Equal(0, batch[i].narrow(0, aLen[i], 3 - aLen[i]).abs().sum().item<float>());  // padding rows are zero
            plainLoss = plainLoss + (row * w[i].narrow(0, 0, aLen[i])).sum();
        }
        plainLoss.backward();
        Assert.True(TestSupport.MaxAbsDiff(gq, q.grad!) < 1e-5);
        Assert.True(TestSupport.MaxAbsDiff(ga, a.grad!) < 1e-5);
        Assert.True(q.grad!.abs().sum().item<float>() > 0);                                  // the question does reach the answer
    }
}
