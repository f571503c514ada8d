using GenRecal.Models;
using SkiaSharp;
using static TorchSharp.torch;

namespace GenRecal.Data;

/// <summary>Decodes PNG/JPEG with SkiaSharp and makes a model's pixel values: resize to its image size, scale to
/// [0, 1], normalise with its mean/std. Output [C, H, W] float32.</summary>
public static class ImagePreprocessor
{
    /// <summary>Largest image (pixels) decoded: a tiny PNG can declare a huge size and exhaust memory.</summary>
    public const long MaxImagePixels = 8192L * 8192;

    public static SKBitmap Decode(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: image not found", path);
        if (Problem(path) is { } problem) throw new InvalidDataException($"{path}: {problem}");
        return SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path}: not a decodable PNG or JPEG image");
    }

    /// <summary>Why the image cannot be used, or null. The whole image is decoded: a truncated PNG has a valid header,
    /// and SKBitmap.Decode returns it half grey without a word.</summary>
    public static string? Problem(string path)
    {
        using var bitmap = DecodeWhole(path, SKAlphaType.Premul, out var problem);
        return problem;
    }

    /// <summary>The whole image as RGBA8888 with <paramref name="alpha"/>, or null and why not (missing, not PNG/JPEG,
    /// over <see cref="MaxImagePixels"/>, truncated or corrupt).</summary>
    static SKBitmap? DecodeWhole(string path, SKAlphaType alpha, out string? problem)
    {
        problem = null;
        if (!File.Exists(path)) { problem = $"image not found: {path}"; return null; }
        using var codec = SKCodec.Create(path);
        if (codec is null) { problem = $"image is not a decodable PNG or JPEG: {path}"; return null; }
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > MaxImagePixels)
        {
            problem = $"image is {info.Width}x{info.Height} pixels; the limit is {MaxImagePixels} pixels: {path}";
            return null;
        }
        var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, alpha));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (result == SKCodecResult.Success) return bitmap;
        bitmap.Dispose();
        problem = $"image is truncated or corrupt ({result}): {path}";
        return null;
    }

    public static Tensor Preprocess(SKBitmap image, VisionConfig v)
    {
        using var resized = image.Width == v.ImageSize && image.Height == v.ImageSize
            ? image.Copy()
            : image.Resize(new SKImageInfo(v.ImageSize, v.ImageSize), new SKSamplingOptions(SKFilterMode.Linear));
        var rgb = new byte[v.ImageSize * v.ImageSize * 3];
        for (int y = 0; y < v.ImageSize; y++)
            for (int x = 0; x < v.ImageSize; x++)
            {
                var c = resized.GetPixel(x, y);
                int i = (y * v.ImageSize + x) * 3;
                (rgb[i], rgb[i + 1], rgb[i + 2]) = (c.Red, c.Green, c.Blue);
            }
        return Normalize(rgb, v.ImageSize, v);
    }

    /// <summary>Square RGB bytes → [3, S, S] pixel values: scaled to [0, 1], then (x − mean) / std per channel.</summary>
    public static Tensor Normalize(byte[] rgb, int size, VisionConfig v)
    {
        int n = size * size;
        var data = new float[3 * n];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                data[c * n + i] = (float)((rgb[i * 3 + c] / 255.0 - v.ImageMean[c]) / v.ImageStd[c]);
        return tensor(data).reshape(3, size, size); // [C, H, W]
    }

    /// <summary>The image's RGB bytes (row-major, alpha dropped as PIL's convert("RGB") drops it) and its size.</summary>
    public static (byte[] Rgb, int Width, int Height) DecodeRgb(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: image not found", path);
        // decoded once: the checks Problem makes come with the pixels
        using var bitmap = DecodeWhole(path, SKAlphaType.Unpremul, out var problem) ?? throw new InvalidDataException($"{path}: {problem}");
        var info = bitmap.Info;
        var rgba = bitmap.Bytes;
        var rgb = new byte[info.Width * info.Height * 3];
        for (int i = 0, n = info.Width * info.Height; i < n; i++)
            (rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]) = (rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2]);
        return (rgb, info.Width, info.Height);
    }

    /// <summary>Width and height from the image's header (no pixels decoded).</summary>
    public static (int Width, int Height) Size(string path)
    {
        using var codec = SKCodec.Create(path) ?? throw new InvalidDataException($"{path}: not a decodable PNG or JPEG image");
        return (codec.Info.Width, codec.Info.Height);
    }

    public static Tensor Load(string path, VisionConfig v)
    {
        using var bmp = Decode(path);
        return Preprocess(bmp, v);
    }
}
