using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Models.Families.InternVL;

namespace GenRecal.Tests.Models.Families;

public class ImageTilingTests
{
    [Fact]
    public void Bicubic_resize_matches_Pillow_byte_for_byte()
    {
        // made by tools/reference/pil-resize/make_fixture.py with Pillow's Image.resize(..., BICUBIC)
        var json = JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("pil", "resize.json")))!;
        foreach (var c in json["cases"]!.AsArray())
        {
            int w = (int)c!["width"]!, h = (int)c["height"]!, ow = (int)c["out_width"]!, oh = (int)c["out_height"]!;
            var expected = Convert.FromBase64String((string)c["expected"]!);
            var actual = PilResize.Bicubic(Convert.FromBase64String((string)c["rgb"]!), w, h, ow, oh);
            Assert.True(expected.SequenceEqual(actual), $"{w}x{h} -> {ow}x{oh}: first difference at byte {expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count()}");
        }
    }

    // Hand-worked from InternVL's find_closest_aspect_ratio: among grids with the image's aspect ratio, a larger grid
    // wins a tie only when the image's area exceeds half the grid's pixel area.
    [Theory]
    [InlineData(1000, 1000, 12, 448, 3, 3)] // (2,2): 1e6 > 401,408; (3,3): 1e6 > 903,168; (4,4) has 16 > 12 tiles
    [InlineData(800, 800, 12, 448, 2, 2)]   // (3,3) would need 640,000 > 903,168
    [InlineData(800, 400, 12, 448, 2, 1)]   // (4,2) would need 320,000 > 802,816
    [InlineData(100, 1000, 6, 448, 1, 6)]   // aspect 0.1: the narrowest grid allowed
    [InlineData(150, 90, 6, 56, 3, 2)]      // aspect 1.67: (3,2) = 1.5 is 0.17 away, (2,1) = 2 is 0.33 away
    public void Tile_grid_follows_InternVLs_closest_aspect_rule(int w, int h, int maxTiles, int tile, int cols, int rows)
    {
        Assert.Equal((cols, rows), DynamicTiling.Grid(w, h, new ImageTiling(1, maxTiles, true), tile));
    }

    [Theory]
    [InlineData(1000, 1000, 10)] // 3×3 + thumbnail
    [InlineData(448, 448, 1)]    // one tile: no thumbnail
    public void Tile_count_adds_the_thumbnail_only_to_a_grid_of_several(int w, int h, int expected)
    {
        Assert.Equal(expected, DynamicTiling.Count(w, h, new ImageTiling(1, 12, true), 448));
    }
}
