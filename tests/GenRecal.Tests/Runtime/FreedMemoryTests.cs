using GenRecal.Runtime;

namespace GenRecal.Tests.Runtime;

/// <summary>The switch of the CLI's allocator setting. (Turning it on is left to processes that own their allocator:
/// doing it here would change this test process's malloc for every other test.)</summary>
[Collection("console")]
public class FreedMemoryTests
{
    [Fact]
    public void The_environment_switch_leaves_glibc_as_it_is()
    {
        var before = Environment.GetEnvironmentVariable(FreedMemory.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(FreedMemory.EnvironmentVariable, "0");
            Assert.False(FreedMemory.Keep());
            Assert.False(FreedMemory.Kept);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FreedMemory.EnvironmentVariable, before);
        }
    }
}
