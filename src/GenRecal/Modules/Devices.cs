using static TorchSharp.torch;

namespace GenRecal.Modules;

/// <summary>Moving tensors to the device of the computation they join (the CPU in everything but the CUDA probe).</summary>
public static class Devices
{
    /// <summary><paramref name="t"/> itself when it is already on <paramref name="device"/> (TorchSharp's Device has no
    /// value equality, so type and index are compared), else a copy there.</summary>
    public static Tensor On(Tensor t, Device device) =>
        t.device_type == device.type && t.device_index == device.index ? t : t.to(device);
}
