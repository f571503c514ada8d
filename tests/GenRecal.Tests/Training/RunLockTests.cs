using GenRecal.Training;

namespace GenRecal.Tests.Training;

public class RunLockTests
{
    [Fact]
    public void A_held_lock_refuses_a_second_holder_until_released()
    {
        var dir = TestSupport.TempDir();
        var first = RunLock.Acquire(dir);
        var e = Assert.Throws<ArgumentException>(() => RunLock.Acquire(dir));
        Assert.Contains("OUT is in use by another run", e.Message);
        Assert.Contains(dir, e.Message);
        first.Dispose();
        RunLock.Acquire(dir).Dispose();
    }

    [Fact]
    public void A_recipe_holds_its_out_from_construction_to_the_end_of_run()
    {
        var root = TestSupport.TempDir();
        var plan = new DistillationPlan
        {
            StudentDir = TinyPair.Student(root), DataPath = TinyPair.WriteData(root), OutDir = Path.Combine(root, "out"),
            Stages = [Stage.Sft], Config = new TrainingConfig { Steps = new() { [3] = 1 }, BatchSize = 2 },
        };
        var first = new DistillationRecipe(plan);
        Assert.Contains("in use by another run", Assert.Throws<ArgumentException>(() => new DistillationRecipe(plan)).Message);
        first.Run();
        new DistillationRecipe(plan with { Resume = true }).Dispose(); // released when the run ended
    }
}
