using System.Text.Json.Nodes;
using GenRecal.Training;

namespace GenRecal.Tests.Training;

public class MetricsLogTests
{
    [Fact]
    public void A_torn_last_line_is_dropped_and_a_bad_line_before_it_is_an_error_naming_the_line()
    {
        var path = Path.Combine(TestSupport.TempDir(), "metrics.jsonl");
        var log = new MetricsLog(path);
        log.Append(new JsonObject { ["stage_name"] = "Alignment", ["step"] = 1 });
        log.Append(new JsonObject { ["stage_name"] = "Alignment", ["step"] = 2 });
        File.AppendAllText(path, "{\"stage_name\": \"Align");
        Assert.Equal(2, MetricsLog.Read(path).Count);
        log.KeepOnly(_ => true);
        Assert.Equal(2, File.ReadAllLines(path).Length);

        File.WriteAllText(path, "{\"step\": 1}\nnot json\n{\"step\": 3}\n");
        var e = Assert.Throws<InvalidDataException>(() => MetricsLog.Read(path));
        Assert.Contains($"{path}: line 2", e.Message);
    }
}
