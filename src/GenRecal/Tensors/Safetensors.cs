using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace GenRecal.Tensors;

/// <summary>One tensor entry of a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// The safetensors format (huggingface/safetensors, docs "Format"): an 8-byte little-endian header
/// length N, N bytes of JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}),
/// padded with spaces to a multiple of 8, then the tensor bytes; offsets are relative to the data start.
/// Every structural rule is checked on read so a corrupt file fails here, naming the file and the problem.
/// </summary>
public static class Safetensors
{
    /// <summary>The spec's limit on the header (100 MB) guards against reading garbage as a length.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static string DTypeName(ScalarType type) =>
        DTypes.FirstOrDefault(kv => kv.Value.Type == type).Key ?? throw new ArgumentException($"dtype {type} has no safetensors name");

    /// <summary>Reads and validates the header; returns the entries and the metadata.</summary>
    public static (List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(string path)
    {
        using var stream = OpenForRead(path);
        return ReadHeader(stream, path);
    }

    internal static FileStream OpenForRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        return File.OpenRead(path);
    }

    internal static (List<SafetensorsEntry>, Dictionary<string, string>, long) ReadHeader(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw Corrupt(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw Corrupt(path, $"header length {headerLength} runs beyond the end of the file ({fileLength} bytes)");
        if (headerLength > MaxHeaderBytes) throw Corrupt(path, $"header length {headerLength} exceeds {MaxHeaderBytes}");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            // duplicate keys are refused at parse time: the spec forbids duplicate tensor names, and which copy a
            // reader would keep is arbitrary
            header = JsonNode.Parse(headerBytes, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw Corrupt(path, "header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Corrupt(path, $"header is not valid JSON ({e.Message})");
        }

        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var metadata = new Dictionary<string, string>();
        var entries = new List<SafetensorsEntry>();
        try
        {
            ReadEntries(path, header, dataLength, metadata, entries);
        }
        catch (InvalidOperationException e)
        {
            // System.Text.Json refuses to read a string holding half a surrogate pair (valid JSON escapes, invalid text)
            throw Corrupt(path, $"header holds invalid text ({e.Message})");
        }

        // Offsets must tile the data region without overlap (the spec forbids holes too, but HF's writer
        // never makes them and readers accept them; overlaps are what corrupt data).
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw Corrupt(path, $"tensors '{sorted[i - 1].Name}' [{sorted[i - 1].Begin}, {sorted[i - 1].End}) and '{sorted[i].Name}' [{sorted[i].Begin}, {sorted[i].End}) overlap");
        return (entries, metadata, dataStart);
    }

    static void ReadEntries(string path, JsonObject header, long dataLength, Dictionary<string, string> metadata, List<SafetensorsEntry> entries)
    {
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is not JsonObject meta) throw Corrupt(path, $"__metadata__ must be an object of strings, found {Models.ConfigJson.Show(node)}");
                foreach (var (k, v) in meta)
                    metadata[k] = v is JsonValue sv && sv.TryGetValue<string>(out var text) ? text
                        : throw Corrupt(path, $"__metadata__ value '{k}' must be a string, found {Models.ConfigJson.Show(v)}");
                continue;
            }
            entries.Add(ParseEntry(path, name, node, dataLength));
        }
    }

    static SafetensorsEntry ParseEntry(string path, string name, JsonNode? node, long dataLength)
    {
        if (node is not JsonObject obj) throw Corrupt(path, $"entry '{name}' is not an object");
        string dtype = obj["dtype"] is JsonValue dv && dv.TryGetValue<string>(out var d) ? d
            : throw Corrupt(path, $"entry '{name}' needs dtype as a string, found {Models.ConfigJson.Show(obj["dtype"])}");
        if (!DTypes.TryGetValue(dtype, out var info)) throw Corrupt(path, $"entry '{name}' has unsupported dtype '{dtype}' (supported: {string.Join(", ", DTypes.Keys)})");
        var shape = Integers(path, name, "shape", obj["shape"], null);
        if (shape.Any(x => x < 0)) throw Corrupt(path, $"entry '{name}' has a negative dimension");
        var offsets = Integers(path, name, "data_offsets", obj["data_offsets"], 2);
        long begin = offsets[0], end = offsets[1];
        if (begin < 0 || end < begin) throw Corrupt(path, $"entry '{name}' has invalid data_offsets [{begin}, {end}]");
        if (end > dataLength) throw Corrupt(path, $"entry '{name}' data_offsets end {end} is beyond the data region ({dataLength} bytes); the file is truncated");
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (a, b) => a * b) * info.Size);
        }
        catch (OverflowException)
        {
            throw Corrupt(path, $"entry '{name}' shape [{string.Join(", ", shape)}] is too large");
        }
        if (end - begin != expected)
            throw Corrupt(path, $"entry '{name}' holds {end - begin} bytes but dtype {dtype} shape [{string.Join(", ", shape)}] needs {expected}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>An array of integers (of <paramref name="count"/> items when given), or a Corrupt error naming the key.</summary>
    static long[] Integers(string path, string name, string key, JsonNode? node, int? count)
    {
        string Found() => Models.ConfigJson.Show(node);
        if (node is not JsonArray a || (count is { } n && a.Count != n))
            throw Corrupt(path, $"entry '{name}' needs {key} as {(count is null ? "an array of integers" : $"[{string.Join(", ", Enumerable.Repeat("integer", count.Value))}]")}, found {Found()}");
        return a.Select(x => x is JsonValue v && v.TryGetValue<long>(out var l) ? l
            : throw Corrupt(path, $"entry '{name}' needs {key} of integers, found {Found()}")).ToArray();
    }

    /// <summary>Loads every tensor of the file (CPU, the file's dtypes).</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var reader = new SafetensorsReader(path);
        return reader.Names.ToDictionary(n => n, reader.Read);
    }

    internal static ScalarType TypeOf(string dtype) => DTypes[dtype].Type;

    /// <summary>Writes tensors (sorted by name, as HF does) atomically: temporary file, fsync, rename.</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        long offset = 0;
        foreach (var (name, t) in ordered)
        {
            long size = t.numel() * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(headerBytes);
            foreach (var (_, t) in ordered)
            {
                using var c = t.detach().cpu().contiguous();
                stream.Write(c.bytes);
            }
        });
    }

    static InvalidDataException Corrupt(string path, string problem) => new($"{path}: invalid safetensors file: {problem}");
}

/// <summary>
/// An open safetensors file whose header was read and validated once, for reading single tensors by name on demand
/// (a store read a batch at a time, where loading every file whole would hold the whole store in memory).
/// </summary>
public sealed class SafetensorsReader : IDisposable
{
    readonly FileStream stream;
    readonly Dictionary<string, SafetensorsEntry> entries;
    readonly long dataStart;

    public SafetensorsReader(string path)
    {
        Path = path;
        stream = Safetensors.OpenForRead(path);
        try
        {
            var (list, metadata, start) = Safetensors.ReadHeader(stream, path);
            entries = list.ToDictionary(e => e.Name);
            Metadata = metadata;
            dataStart = start;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IEnumerable<string> Names => entries.Keys;
    public bool Contains(string name) => entries.ContainsKey(name);

    /// <summary>One tensor (CPU, the file's dtype); a missing name is an error naming the file.</summary>
    public Tensor Read(string name)
    {
        if (!entries.TryGetValue(name, out var e)) throw new InvalidDataException($"{Path}: no tensor '{name}'");
        var bytes = new byte[e.End - e.Begin];
        stream.Position = dataStart + e.Begin;
        stream.ReadExactly(bytes);
        var t = empty(e.Shape, Safetensors.TypeOf(e.DType));
        if (bytes.Length > 0) t.bytes = bytes;
        return t;
    }

    public void Dispose() => stream.Dispose();
}
