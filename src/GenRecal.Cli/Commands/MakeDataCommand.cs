using System.CommandLine;
using GenRecal.Data;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal make-data: render the synthetic visual QA benchmark.</summary>
public static class MakeDataCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "output directory", Required = true };
        var train = new Option<int>("--train") { Description = "training examples", DefaultValueFactory = _ => 600 };
        var val = new Option<int>("--val") { Description = "validation examples", DefaultValueFactory = _ => 60 };
        var test = new Option<int>("--test") { Description = "test examples", DefaultValueFactory = _ => 120 };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var maxObjects = new Option<int>("--max-objects") { Description = "difficulty: objects per scene", DefaultValueFactory = _ => 5 };
        var maxValue = new Option<int>("--max-value") { Description = "difficulty: largest bar value", DefaultValueFactory = _ => 9 };
        var explained = new Option<bool>("--explained") { Description = "longer explained answers ending in 'Answer: x'" };
        var cmd = new Command("make-data", "Render the synthetic visual question-answering benchmark") { output, train, val, test, seed, maxObjects, maxValue, explained };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var o = new SyntheticBenchmark.Options(r.GetValue(train), r.GetValue(val), r.GetValue(test), r.GetValue(seed),
                MaxObjects: r.GetValue(maxObjects), MaxValue: r.GetValue(maxValue), ExplainedAnswers: r.GetValue(explained));
            if (o.Train < 0 || o.Val < 0 || o.Test < 0) throw new ArgumentException("split sizes must not be negative");
            if (o.MaxObjects < 2 || o.MaxValue < 2) throw new ArgumentException("--max-objects and --max-value must be at least 2");
            SyntheticBenchmark.Generate(r.GetValue(output)!, o);
            Console.WriteLine($"wrote {o.Train}/{o.Val}/{o.Test} examples to {r.GetValue(output)}");
            return ExitCodes.Success;
        }));
        return cmd;
    }
}
