using System.CommandLine;
using GenRecal.Cli.Commands;

namespace GenRecal.Cli;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot() => new("genrecal: distill a large vision-language model into a small one across tokenizers")
    {
        GenerateCommand.Create(),
        InspectCommand.Create(),
        DistillCommand.Create(),
        PairReportCommand.Create(),
        MakeDataCommand.Create(),
        EvalCommand.Create(),
        DemoCommand.Create(),
    };
}
