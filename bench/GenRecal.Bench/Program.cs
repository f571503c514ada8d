using TorchSharp;
GenRecal.Runtime.TorchRuntime.EnsureLoaded();
var a = torch.randn(4, 4);
Console.WriteLine((a.matmul(a)).sum().item<float>() + " " + GenRecal.Runtime.TorchRuntime.Mode);
