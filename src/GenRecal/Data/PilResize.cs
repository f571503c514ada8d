namespace GenRecal.Data;

/// <summary>
/// Pillow's bicubic resize of 8-bit RGB, reproduced to the bit: the image processors of InternVL and Qwen2-VL call
/// PIL's Image.resize, so matching their pixel values means matching Pillow (libImaging/Resample.c): separable
/// passes (horizontal, then vertical) with the bicubic kernel a = −0.5 widened by the scale when shrinking,
/// coefficients normalised and fixed to 22 fractional bits, each pass rounded and clipped to 8 bits.
/// </summary>
public static class PilResize
{
    const int PrecisionBits = 32 - 8 - 2;

    /// <summary>RGB bytes (row-major, 3 per pixel) of a <paramref name="width"/>×<paramref name="height"/> image
    /// resized to <paramref name="outWidth"/>×<paramref name="outHeight"/>.</summary>
    public static byte[] Bicubic(byte[] rgb, int width, int height, int outWidth, int outHeight)
    {
        if (rgb.Length != width * height * 3) throw new ArgumentException($"expected {width * height * 3} bytes for {width}x{height} RGB, found {rgb.Length}");
        if (outWidth == width && outHeight == height) return (byte[])rgb.Clone();
        var (boundsH, kH, sizeH) = Coefficients(width, outWidth);
        var (boundsV, kV, sizeV) = Coefficients(height, outHeight);
        byte[] image = rgb;
        int w = width, h = height;
        if (outWidth != width)
        {
            // Pillow runs the horizontal pass over the source rows the vertical pass reads; computing all rows gives the same pixels
            var tmp = new byte[outWidth * h * 3];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < outWidth; x++)
                {
                    int min = boundsH[2 * x], count = boundsH[2 * x + 1];
                    for (int c = 0; c < 3; c++)
                    {
                        long ss = 1L << (PrecisionBits - 1);
                        for (int i = 0; i < count; i++) ss += image[(y * w + min + i) * 3 + c] * (long)kH[x * sizeH + i];
                        tmp[(y * outWidth + x) * 3 + c] = Clip8(ss);
                    }
                }
            image = tmp;
            w = outWidth;
        }
        if (outHeight != height)
        {
            var tmp = new byte[w * outHeight * 3];
            for (int y = 0; y < outHeight; y++)
            {
                int min = boundsV[2 * y], count = boundsV[2 * y + 1];
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        long ss = 1L << (PrecisionBits - 1);
                        for (int i = 0; i < count; i++) ss += image[((min + i) * w + x) * 3 + c] * (long)kV[y * sizeV + i];
                        tmp[(y * w + x) * 3 + c] = Clip8(ss);
                    }
            }
            image = tmp;
        }
        return image;
    }

    static byte Clip8(long ss)
    {
        long v = ss >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0) x = -x;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    /// <summary>Per output pixel: first source pixel and count (bounds), and fixed-point weights (ksize per pixel),
    /// as Pillow's precompute_coeffs and normalize_coeffs_8bpc compute them.</summary>
    static (int[] Bounds, int[] Weights, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = (int)(center - support + 0.5); // C's truncation toward zero, then clamped
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            double ww = 0;
            Array.Clear(k);
            for (int x = 0; x < xmax; x++)
            {
                double w = Cubic((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double v = ww != 0 ? k[x] / ww : k[x];
                weights[xx * ksize + x] = (int)(v < 0 ? -0.5 + v * (1 << PrecisionBits) : 0.5 + v * (1 << PrecisionBits));
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return (bounds, weights, ksize);
    }
}
