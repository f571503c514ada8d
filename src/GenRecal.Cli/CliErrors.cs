using Spectre.Console;

namespace GenRecal.Cli;

/// <summary>Turns exceptions into one clear line and an exit code; never a stack trace for user errors.</summary>
public static class CliErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.InputError;
        }
        catch (Training.TrainingStoppedException e)
        {
            Console.Error.WriteLine($"stopped: {e.Message}");
            return ExitCodes.Stopped;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("GENRECAL_DEBUG") == "1") Console.Error.WriteLine(e);
            return ExitCodes.InternalError;
        }
    }

    /// <summary>Whether an exception is bad input (exit 2) rather than a bug (exit 70).</summary>
    public static bool IsUserError(Exception e) =>
        e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or FormatException
            or UnauthorizedAccessException;

    public static void Markup(string text) => AnsiConsole.MarkupLine(text);
}
