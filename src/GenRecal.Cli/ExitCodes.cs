namespace GenRecal.Cli;

/// <summary>Process exit codes of the genrecal command.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>Bad input the user can fix: missing or corrupt file, wrong shapes, mismatched config.</summary>
    public const int InputError = 2;
    /// <summary>A run stopped on purpose: NaN/Inf loss, interrupted.</summary>
    public const int Stopped = 3;
    public const int InternalError = 70;
}
