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
}
