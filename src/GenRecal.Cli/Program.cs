using System.CommandLine;
using GenRecal.Cli.Commands;

namespace GenRecal.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        GenRecal.Runtime.FreedMemory.Keep(); // before the first tensor: each step reuses the last one's pages
        return Run(args);
    }

    /// <summary>The command line without the process-wide allocator setting (what the tests call in-process).</summary>
    public static int Run(string[] args)
    {
        // Spectre writes wherever Console.Out points now (so output can be redirected and captured)
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(Console.Out),
        });
        var parsed = BuildRoot().Parse(args);
        if (parsed.GetValue(Threads) is { } threads)
        {
            if (threads < 1) { Console.Error.WriteLine($"error: --threads must be at least 1, found {threads}"); return ExitCodes.InputError; }
            // LibTorch's intra-op pool; with every core busy, another process on the machine stalls every matmul
            TorchSharp.torch.set_num_threads(threads);
        }
        int code = parsed.Invoke();
        // System.CommandLine prints parse errors and returns 1; a bad argument is bad input like any other
        return parsed.Errors.Count > 0 ? ExitCodes.InputError : code;
    }

    /// <summary>Threads for LibTorch's intra-op work; default: LibTorch's own (the machine's cores).</summary>
    public static readonly Option<int?> Threads = new("--threads") { Description = "CPU threads for tensor work (default: the cores)", Recursive = true };

    public static RootCommand BuildRoot() => new("genrecal: distill a large vision-language model into a small one across tokenizers")
    {
        Threads,
        GenerateCommand.Create(),
        InspectCommand.Create(),
        DistillCommand.Create(),
        TeacherFeaturesCommand.Create(),
        PairReportCommand.Create(),
        MakeDataCommand.Create(),
        EvalCommand.Create(),
        DemoCommand.Create(),
        SummarizeCommand.Create(),
    };
}
