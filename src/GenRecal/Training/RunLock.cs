namespace GenRecal.Training;

/// <summary>
/// An exclusive lock on an output folder (OUT/.lock opened with FileShare.None, which .NET takes as an flock on
/// Linux), held for a run so two runs never write the same checkpoints. The operating system drops it when the
/// process dies, so a crash never leaves a stale lock behind; the file itself stays and is harmless.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = ".lock";
    readonly FileStream stream;

    RunLock(FileStream stream) => this.stream = stream;

    public static RunLock Acquire(string outDir)
    {
        var path = Path.Combine(outDir, FileName);
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            stream.Write(System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            stream.Flush();
            return new RunLock(stream);
        }
        catch (UnauthorizedAccessException)
        {
            throw new ArgumentException($"{outDir}: cannot write in the output folder (permission denied creating {path})");
        }
        catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException))
        {
            throw new ArgumentException($"{outDir}: OUT is in use by another run (it holds {path}); wait for that run to end or choose another output directory ({e.Message})");
        }
    }

    public void Dispose() => stream.Dispose();
}
