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
        if (!File.Exists(path)) return $"image not found: {path}";
        using var codec = SKCodec.Create(path);
        if (codec is null) return $"image is not a decodable PNG or JPEG: {path}";
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > MaxImagePixels)
            return $"image is {info.Width}x{info.Height} pixels; the limit is {MaxImagePixels} pixels: {path}";
        using var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        return result == SKCodecResult.Success ? null : $"image is truncated or corrupt ({result}): {path}";
    }

    public static Tensor Preprocess(SKBitmap image, VisionConfig v)
    {
        using var resized = image.Width == v.ImageSize && image.Height == v.ImageSize
            ? image.Copy()
            : image.Resize(new SKImageInfo(v.ImageSize, v.ImageSize), new SKSamplingOptions(SKFilterMode.Linear));
        int n = v.ImageSize * v.ImageSize;
        var data = new float[3 * n];
        for (int y = 0; y < v.ImageSize; y++)
            for (int x = 0; x < v.ImageSize; x++)
            {
                var c = resized.GetPixel(x, y);
                int i = y * v.ImageSize + x;
                data[i] = (float)((c.Red / 255.0 - v.ImageMean[0]) / v.ImageStd[0]);
                data[n + i] = (float)((c.Green / 255.0 - v.ImageMean[1]) / v.ImageStd[1]);
                data[2 * n + i] = (float)((c.Blue / 255.0 - v.ImageMean[2]) / v.ImageStd[2]);
            }
        return tensor(data).reshape(3, v.ImageSize, v.ImageSize); // [C, H, W]
    }

    public static Tensor Load(string path, VisionConfig v)
    {
        using var bmp = Decode(path);
        return Preprocess(bmp, v);
    }
}
