using System.Runtime.InteropServices;

namespace GenRecal.Runtime;

/// <summary>
/// glibc's allocator gives every tensor above its mmap threshold (32 MB at most) fresh pages from the kernel and
/// returns them on free, and trims the heap's top after each step's tensors are freed; the next step's tensors then
/// fault those pages in again and the kernel zeroes each one on first touch. perf of a 124M-parameter fp32 training
/// step (bench/README.md) put 16 % of the time in the kernel's clear_page_erms. Keeping freed memory in the process
/// (no mmap for large blocks, no trimming, one arena so every thread reuses the same pool) lets each step reuse the
/// last one's pages, as PyTorch's CUDA caching allocator does on a GPU. The price: the process keeps its peak memory
/// until it exits. Process-wide, so the CLI and the bench turn it on; a library user decides for their own process.
/// </summary>
public static class FreedMemory
{
    const int MTrimThreshold = -1, MMmapMax = -4, MArenaMax = -8;

    /// <summary>Set by the CLI and the bench at start: GENRECAL_KEEP_FREED_MEMORY=0 leaves glibc's defaults.</summary>
    public const string EnvironmentVariable = "GENRECAL_KEEP_FREED_MEMORY";

    /// <summary>Whether <see cref="Keep"/> took effect in this process.</summary>
    public static bool Kept { get; private set; }

    /// <summary>Turns the behaviour above on; false where the C library is not glibc (nothing changes there) or the
    /// environment variable says 0.</summary>
    public static bool Keep()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(EnvironmentVariable) == "0") return false;
        try
        {
            // each call returns 1 on success; all three are needed for the reuse to hold
            Kept = mallopt(MArenaMax, 1) == 1 & mallopt(MMmapMax, 0) == 1 & mallopt(MTrimThreshold, int.MaxValue) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Kept = false; // not glibc (musl has no mallopt)
        }
        return Kept;
    }

    [DllImport("libc.so.6")] static extern int mallopt(int param, int value);
}
