using GenRecal.Data;
using static TorchSharp.torch;

namespace GenRecal.Models.Families.Qwen2VL;

/// <summary>
/// Qwen2VLImageProcessor: smart_resize to multiples of patch·merge within [min_pixels, max_pixels], Pillow bicubic
/// resize, rescale by 1/255 and normalise in float32 as the processor's numpy code does, then the patch sequence:
/// the frame repeated to temporal_patch_size, patches ordered merge window by merge window
/// ([grid_t·grid_h·grid_w, C·t·p·p], transformers' reshape + transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)).
/// </summary>
internal static class Qwen2VlImages
{
    /// <summary>smart_resize (image_processing_qwen2_vl.py); Python's round() rounds half to even.</summary>
    public static (int Height, int Width) SmartResize(int height, int width, Qwen2VlSettings s, string file)
    {
        if ((double)Math.Max(height, width) / Math.Min(height, width) > 200)
            throw new InvalidDataException($"{file}: the aspect ratio of a {width}x{height} image is over 200, which Qwen2-VL's processor refuses");
        int f = s.Factor;
        int h = (int)Math.Round((double)height / f, MidpointRounding.ToEven) * f;
        int w = (int)Math.Round((double)width / f, MidpointRounding.ToEven) * f;
        if ((long)h * w > s.MaxPixels)
        {
            double beta = Math.Sqrt((double)height * width / s.MaxPixels);
            h = Math.Max(f, (int)Math.Floor(height / beta / f) * f);
            w = Math.Max(f, (int)Math.Floor(width / beta / f) * f);
        }
        else if ((long)h * w < s.MinPixels)
        {
            double beta = Math.Sqrt((double)s.MinPixels / ((double)height * width));
            h = (int)Math.Ceiling(height * beta / f) * f;
            w = (int)Math.Ceiling(width * beta / f) * f;
        }
        return (h, w);
    }

    public static ImageGrid Grid(int height, int width, Qwen2VlSettings s, string file)
    {
        var (h, w) = SmartResize(height, width, s, file);
        return new ImageGrid(1, h / s.PatchSize, w / s.PatchSize);
    }

    public static ImageInput Load(string path, Qwen2VlSettings s)
    {
        var (rgb, width, height) = ImagePreprocessor.DecodeRgb(path);
        var (h, w) = SmartResize(height, width, s, path);
        var resized = PilResize.Bicubic(rgb, width, height, w, h);
        int p = s.PatchSize, m = s.MergeSize, tp = s.TemporalPatchSize, c = s.InChannels;
        int gh = h / p, gw = w / p;
        var mean = s.ImageMean.Select(v => (float)v).ToArray();
        var std = s.ImageStd.Select(v => (float)v).ToArray();
        var data = new float[gh * gw * s.PatchValues];
        int row = 0;
        // one row per patch, in the order (merge row, merge col, row in window, col in window)
        for (int bh = 0; bh < gh / m; bh++)
            for (int bw = 0; bw < gw / m; bw++)
                for (int ih = 0; ih < m; ih++)
                    for (int iw = 0; iw < m; iw++, row++)
                    {
                        int y0 = (bh * m + ih) * p, x0 = (bw * m + iw) * p, o = row * s.PatchValues;
                        // values in the order (channel, frame, y, x); the frame is the one image repeated
                        for (int ch = 0; ch < c; ch++)
                            for (int t = 0; t < tp; t++)
                                for (int y = 0; y < p; y++)
                                    for (int x = 0; x < p; x++)
                                    {
                                        float v = (float)(resized[((y0 + y) * w + x0 + x) * 3 + ch] * (1.0 / 255));
                                        data[o++] = (v - mean[ch]) / std[ch];
                                    }
                    }
        return new ImageInput(tensor(data).reshape(gh * gw, s.PatchValues), new ImageGrid(1, gh, gw));
    }
}
