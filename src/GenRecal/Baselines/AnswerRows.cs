using GenRecal.Data;
using static TorchSharp.torch;

namespace GenRecal.Baselines;

/// <summary>
/// Where a batch's answer tokens are predicted: for each example, the flat row indices b·T + p of the hidden
/// states at positions p whose next token (label at p+1) is trained, in order. Heads and losses then run on
/// these rows only.
/// </summary>
public sealed record AnswerRows(long[][] PerExample, long[] Flat)
{
    public static AnswerRows Of(ModelBatch batch)
    {
        long b = batch.Labels.shape[0], t = batch.Labels.shape[1];
        var labels = batch.Labels.data<long>().ToArray();
        var per = new long[b][];
        for (long i = 0; i < b; i++)
        {
            var rows = new List<long>();
            for (long p = 0; p + 1 < t; p++)
                if (labels[i * t + p + 1] != Recalibration.DistillationLosses.IgnoreIndex) rows.Add(i * t + p);
            per[i] = rows.ToArray();
        }
        return new AnswerRows(per, per.SelectMany(r => r).ToArray());
    }

    /// <summary>
    /// The k-th answer position of each side paired, per example truncated to the shorter answer; with
    /// <paramref name="requireEqual"/> (same tokenizer) unequal answer lengths are an error, not a truncation.
    /// </summary>
    public static (long[] Teacher, long[] Student) Pair(AnswerRows teacher, AnswerRows student, bool requireEqual)
    {
        var t = new List<long>();
        var s = new List<long>();
        for (int i = 0; i < teacher.PerExample.Length; i++)
        {
            int n = Math.Min(teacher.PerExample[i].Length, student.PerExample[i].Length);
            if (requireEqual && teacher.PerExample[i].Length != student.PerExample[i].Length)
                throw new InvalidDataException($"example {i} of the batch has {teacher.PerExample[i].Length} teacher answer tokens and {student.PerExample[i].Length} student ones (cut off differently by max_length?); token-level KD needs one tokenization");
            t.AddRange(teacher.PerExample[i].Take(n));
            s.AddRange(student.PerExample[i].Take(n));
        }
        return (t.ToArray(), s.ToArray());
    }

    /// <summary>Rows of h [B, T, D] at flat indices → [N, D].</summary>
    public static Tensor Gather(Tensor h, long[] flat) => h.reshape(-1, h.shape[2]).index_select(0, tensor(flat)); // [N, D]

    /// <summary>The next-token targets of the rows: label at p+1 → [N].</summary>
    public static Tensor Targets(ModelBatch batch, long[] flat) =>
        batch.Labels.reshape(-1).index_select(0, tensor(flat.Select(r => r + 1).ToArray())); // [B*T] → [N]
}
