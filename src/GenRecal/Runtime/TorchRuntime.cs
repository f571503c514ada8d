using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace GenRecal.Runtime;

/// <summary>
/// Makes TorchSharp's native backend loadable before any tensor is touched. On hosts whose libstdc++
/// predates GCC 13 the build has marked libLibTorchSharp.so's GLIBCXX_3.4.32 need weak
/// (build/GenRecal.Native.targets); here the one missing symbol is supplied by loading
/// libgenrecal_stdcxx_shim.so with RTLD_GLOBAL, so the dynamic linker binds it when TorchSharp loads.
/// </summary>
public static class TorchRuntime
{
    public const string MissingSymbol = "_ZSt21ios_base_library_initv";
    public const string ShimFileName = "libgenrecal_stdcxx_shim.so";
    const int RtldNow = 2, RtldGlobal = 0x100;

    static readonly Lazy<string> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>How the backend was made loadable: "native" (host libstdc++ is new enough) or the shim path.</summary>
    public static string Mode => Loaded.Value;

    /// <summary>Call before the first TorchSharp call; cheap after the first time.</summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

#pragma warning disable CA2255 // a module initializer is the only hook that runs before TorchSharp's static constructor
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize() => EnsureLoaded();

    /// <summary>True when the process's libstdc++ already defines std::ios_base_library_init().</summary>
    public static bool HostHasSymbol()
    {
        if (!OperatingSystem.IsLinux()) return true;
        IntPtr handle = dlopen("libstdc++.so.6", RtldNow);
        return handle != IntPtr.Zero && dlsym(handle, MissingSymbol) != IntPtr.Zero;
    }

    static string Load()
    {
        string mode = "native";
        if (!HostHasSymbol())
        {
            string shim = FindShim() ?? throw new InvalidOperationException(
                $"TorchSharp cannot load: this host's libstdc++ lacks GLIBCXX_3.4.32 ({MissingSymbol}) and {ShimFileName} " +
                $"was not found next to the application ({AppContext.BaseDirectory}). It is built by build/GenRecal.Native.targets " +
                "during 'dotnet build' when g++ is installed: run 'apt-get install g++' and rebuild, or install libstdc++ from GCC 13+.");
            if (dlopen(shim, RtldNow | RtldGlobal) == IntPtr.Zero)
                throw new InvalidOperationException($"Could not load {shim}: {Marshal.PtrToStringAnsi(dlerror())}");
            mode = shim;
        }
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException(
                $"TorchSharp's native backend failed to load ({mode}): {e.GetBaseException().Message}. If the message names " +
                "GLIBCXX_3.4.32, rebuild so build/GenRecal.Native.targets can patch libLibTorchSharp.so in the output folder.", e);
        }
        return mode;
    }

    static string? FindShim()
    {
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(TorchRuntime).Assembly.Location) ?? "" })
        {
            var path = Path.Combine(dir, ShimFileName);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    [DllImport("libdl.so.2")] static extern IntPtr dlopen(string fileName, int flags);
    [DllImport("libdl.so.2")] static extern IntPtr dlsym(IntPtr handle, string symbol);
    [DllImport("libdl.so.2")] static extern IntPtr dlerror();
}
