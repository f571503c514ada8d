using System.Buffers.Binary;
using System.Text;
using GenRecal.Tensors;
using static TorchSharp.torch;

namespace GenRecal.Tests.Tensors;

public class SafetensorsTests
{
    static Dictionary<string, Tensor> Sample()
    {
        manual_seed(3);
        return new()
        {
            ["a.f32"] = randn(3, 4),
            ["b.f16"] = randn(5).to(ScalarType.Float16),
            ["c.bf16"] = randn(2, 2, 2).to(ScalarType.BFloat16),
            ["d.i64"] = arange(0, 6, ScalarType.Int64).reshape(2, 3),
            ["e.empty"] = zeros(0, 3),
        };
    }

    [Fact]
    public void Save_then_load_is_bit_exact_for_every_dtype()
    {
        var path = Path.Combine(TestSupport.TempDir(), "x.safetensors");
        var tensors = Sample();
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var loaded = Safetensors.Load(path);
        Assert.Equal(tensors.Keys.Order(), loaded.Keys.Order());
        foreach (var (k, t) in tensors)
        {
            Assert.Equal(t.dtype, loaded[k].dtype);
            Assert.Equal(t.shape, loaded[k].shape);
            Assert.Equal(t.bytes.ToArray(), loaded[k].bytes.ToArray());
        }
        Assert.Equal("pt", Safetensors.ReadHeader(path).Metadata["format"]);
    }

    [Fact]
    public void Layout_follows_the_spec_header_length_padding_and_offsets()
    {
        var path = Path.Combine(TestSupport.TempDir(), "x.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["w"] = tensor(new[] { 1f, 2f }) });
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + n) % 8);
        Assert.Equal(8 + n + 8, bytes.Length);
        Assert.Equal(1f, BitConverter.ToSingle(bytes, (int)(8 + n)));
        Assert.Contains("\"data_offsets\":[0,8]", Encoding.UTF8.GetString(bytes, 8, (int)n));
    }

    [Fact]
    public void Reads_the_HuggingFace_written_fixture()
    {
        var t = Safetensors.Load(TestSupport.Fixture("hf", "tiny-qwen2", "model.safetensors"));
        Assert.Equal(new long[] { 96, 32 }, t["model.embed_tokens.weight"].shape);
        Assert.Equal(new long[] { 16 }, t["model.layers.0.self_attn.k_proj.bias"].shape);
    }

    static string WriteRaw(string header, int dataBytes, long? declaredLength = null)
    {
        var path = Path.Combine(TestSupport.TempDir(), "bad.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var s = File.Create(path);
        var len = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(declaredLength ?? h.Length));
        s.Write(len);
        s.Write(h);
        s.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, null, "truncated")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, 5000L, "beyond the end of the file")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, null, "overlap")]
    [InlineData("""{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}""", 8, null, "unsupported dtype 'Q4'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, null, "needs 12")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2]""", 8, null, "not valid JSON")]
    public void Corrupt_files_fail_with_a_message_naming_the_file_and_problem(string header, int data, long? declared, string expected)
    {
        var path = WriteRaw(header, data, declared);
        var e = Assert.Throws<InvalidDataException>(() => Safetensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_file_shorter_than_the_length_prefix_is_rejected()
    {
        var path = Path.Combine(TestSupport.TempDir(), "short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("shorter than the 8-byte header", Assert.Throws<InvalidDataException>(() => Safetensors.Load(path)).Message);
    }

    [Fact]
    public void Truncating_a_real_checkpoint_is_detected()
    {
        var path = Path.Combine(TestSupport.TempDir(), "x.safetensors");
        Safetensors.Save(path, Sample());
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Safetensors.Load(path)).Message);
    }
}
