namespace GenRecal.Models.Families.InternVL;

/// <summary>
/// InternVL's dynamic tiling (dynamic_preprocess in its load_image code): the image is resized to the tile grid whose
/// aspect ratio is closest to its own, among grids of <see cref="ImageTiling.MinTiles"/>..<see cref="ImageTiling.MaxTiles"/>
/// tiles, then cut into tiles in row-major order; with a thumbnail, a grid of more than one tile is followed by the
/// whole image resized to one tile.
/// </summary>
internal static class DynamicTiling
{
    /// <summary>The chosen grid (columns, rows) for an image of <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static (int Cols, int Rows) Grid(int width, int height, ImageTiling tiling, int tileSize)
    {
        double aspect = (double)width / height;
        // InternVL builds a set of (i, j) and sorts it by i·j; Python's sort is stable, so grids with equal products keep
        // the set's iteration order. Only a tie in aspect distance between two such grids could tell the orders apart.
        var grids = new List<(int Cols, int Rows)>();
        for (int n = tiling.MinTiles; n <= tiling.MaxTiles; n++)
            for (int i = 1; i <= n; i++)
                for (int j = 1; j <= n; j++)
                    if (i * j <= tiling.MaxTiles && i * j >= tiling.MinTiles && !grids.Contains((i, j))) grids.Add((i, j));
        grids = grids.OrderBy(g => g.Cols * g.Rows).ToList();
        double bestDiff = double.PositiveInfinity;
        var best = (1, 1);
        double area = (double)width * height;
        foreach (var g in grids)
        {
            double diff = Math.Abs(aspect - (double)g.Cols / g.Rows);
            if (diff < bestDiff)
            {
                bestDiff = diff;
                best = g;
            }
            else if (diff == bestDiff && area > 0.5 * tileSize * tileSize * g.Cols * g.Rows)
                best = g;
        }
        return best;
    }

    /// <summary>Tiles (thumbnail included) for an image of this size.</summary>
    public static int Count(int width, int height, ImageTiling tiling, int tileSize)
    {
        var (cols, rows) = Grid(width, height, tiling, tileSize);
        int n = cols * rows;
        return tiling.Thumbnail && n != 1 ? n + 1 : n;
    }

    /// <summary>The tiles' RGB bytes, each <paramref name="tileSize"/>² × 3, in InternVL's order.</summary>
    public static List<byte[]> Cut(byte[] rgb, int width, int height, ImageTiling tiling, int tileSize)
    {
        var (cols, rows) = Grid(width, height, tiling, tileSize);
        int tw = cols * tileSize, th = rows * tileSize;
        var resized = Data.PilResize.Bicubic(rgb, width, height, tw, th);
        var tiles = new List<byte[]>();
        for (int i = 0; i < cols * rows; i++)
        {
            int x0 = i % cols * tileSize, y0 = i / cols * tileSize;
            var tile = new byte[tileSize * tileSize * 3];
            for (int y = 0; y < tileSize; y++)
                Array.Copy(resized, ((y0 + y) * tw + x0) * 3, tile, y * tileSize * 3, tileSize * 3);
            tiles.Add(tile);
        }
        if (tiling.Thumbnail && tiles.Count != 1) tiles.Add(Data.PilResize.Bicubic(rgb, width, height, tileSize, tileSize));
        return tiles;
    }
}
