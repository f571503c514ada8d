using GenRecal.Runtime;
using static TorchSharp.torch;

namespace GenRecal.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void TorchSharp_loads_and_a_matmul_matches_plain_loops()
    {
        TorchRuntime.EnsureLoaded();
        manual_seed(1);
        var a = randn(5, 7);
        var b = randn(7, 3);
        var c = a.matmul(b);
        var av = a.data<float>().ToArray();
        var bv = b.data<float>().ToArray();
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++)
            {
                double s = 0;
                for (int k = 0; k < 7; k++) s += av[i * 7 + k] * bv[k * 3 + j];
                Assert.Equal(s, c[i, j].item<float>(), 4);
            }
    }

    [Fact]
    public void Backward_computes_the_analytic_gradient()
    {
        var x = tensor(new[] { 1f, 2f, 3f }, requires_grad: true);
        (x * x).sum().backward();
        Assert.Equal(new[] { 2f, 4f, 6f }, x.grad!.data<float>().ToArray());
    }

    [Fact]
    public void Output_library_is_patched_exactly_when_the_host_libstdcxx_is_old()
    {
        var output = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        var needs = ElfVersionNeeds.Read(File.ReadAllBytes(output), output);
        var glibcxx32 = Assert.Single(needs, n => n.Version == "GLIBCXX_3.4.32");
        Assert.Equal(!TorchRuntime.HostHasSymbol(), glibcxx32.IsWeak);
        // every other need is left as TorchSharp shipped it
        Assert.All(needs.Where(n => n.Version != "GLIBCXX_3.4.32"), n => Assert.False(n.IsWeak));
    }

    [Fact]
    public void MarkWeak_flips_only_the_named_version_and_is_idempotent()
    {
        var output = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        var bytes = File.ReadAllBytes(output);
        foreach (var n in ElfVersionNeeds.Read(bytes, output)) // start from TorchSharp's original flags
            BitConverter.GetBytes((ushort)0).CopyTo(bytes, (int)n.FlagsOffset);
        var before = (byte[])bytes.Clone();
        Assert.True(ElfVersionNeeds.MarkWeak(bytes, "GLIBCXX_3.4.32", output));
        Assert.False(ElfVersionNeeds.MarkWeak(bytes, "GLIBCXX_3.4.32", output));
        int differing = bytes.Zip(before).Count(p => p.First != p.Second);
        Assert.Equal(1, differing); // one flag byte of one vna_flags field
    }

    [Fact]
    public void A_non_elf_file_is_rejected_with_its_name()
    {
        var e = Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Read(new byte[100], "fake.so"));
        Assert.Contains("fake.so", e.Message);
    }
}
