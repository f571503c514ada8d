using System.CommandLine;
using GenRecal.Cli.Commands;

namespace GenRecal.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Spectre writes wherever Console.Out points now (so output can be redirected and captured)
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(Console.Out),
        });
        var parsed = BuildRoot().Parse(args);
        int code = parsed.Invoke();
        // System.CommandLine prints parse errors and returns 1; a bad argument is bad input like any other
        return parsed.Errors.Count > 0 ? ExitCodes.InputError : code;
    }

    public static RootCommand BuildRoot() => new("genrecal: distill a large vision-language model into a small one across tokenizers")
    {
        GenerateCommand.Create(),
        InspectCommand.Create(),
        DistillCommand.Create(),
        PairReportCommand.Create(),
        MakeDataCommand.Create(),
        EvalCommand.Create(),
        DemoCommand.Create(),
        SummarizeCommand.Create(),
    };
}
