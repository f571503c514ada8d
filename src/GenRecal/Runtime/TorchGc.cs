namespace GenRecal.Runtime;

/// <summary>
/// Works around a use-after-free in TorchSharp 0.107: a <c>Scalar</c> built from a C# number (every
/// <c>tensor + 1.0</c>, and the <c>alpha = 1</c> TorchSharp adds to every <c>a + b</c>) is kept alive
/// only by its finalizer, and the native call receives its raw handle with no <c>GC.KeepAlive</c>. If a
/// garbage collection runs while the calling thread is inside that native call, the finalizer thread may
/// free the scalar first; libtorch then fails with "Unknown scalar type" or "Expected false to be true".
/// A collection can only start during the call when another thread allocates, so the library keeps all
/// of its work on one thread, the CLI renders progress on that thread too, and before a long run of
/// tensor work the backlog of finalizers left by earlier phases (image generation and decoding, model
/// building) is drained here instead of running, and allocating, beside the first training steps.
/// Measured with <c>bench/GenRecal.Bench scalar-race</c>: one thread doing <c>x + 1.0</c> runs
/// 800 000 iterations without error; with a second thread allocating it fails within a second.
/// </summary>
public static class TorchGc
{
    /// <summary>Collects and runs every pending finalizer now, on the calling thread's schedule.</summary>
    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
