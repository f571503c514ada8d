namespace GenRecal.Training;

/// <summary>Optional linear warm-up to LrStart, then linear decay LrStart → LrEnd over the stage (paper: 1e-4 → 1e-5).</summary>
public static class LinearSchedule
{
    public static double At(int step, int totalSteps, double start, double end, int warmup = 0)
    {
        if (warmup > 0 && step < warmup) return start * (step + 1) / warmup;
        int span = Math.Max(1, totalSteps - warmup - 1);
        double progress = Math.Clamp((double)(step - warmup) / span, 0, 1);
        return start + (end - start) * progress;
    }
}
