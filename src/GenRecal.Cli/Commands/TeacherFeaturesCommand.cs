using System.CommandLine;
using GenRecal.Data;
using GenRecal.Models;
using GenRecal.Training;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>
/// genrecal teacher-features: the frozen teacher's stage 1-2 features for a data file, computed into the store that
/// `distill --teacher-features DIR` reads. The pass splits by shard (256 data lines each): with --part K/N a process
/// computes the shards whose index is K−1 modulo N, so N processes (one per core or machine, on a shared folder) fill
/// one store; a distill run then finds every shard and runs no teacher pass. Shards already present and current are
/// kept, so a part interrupted midway resumes where it stopped.
/// </summary>
public static class TeacherFeaturesCommand
{
    public static Command Create()
    {
        var teacher = new Option<string>("--teacher") { Description = "teacher model directory", Required = true };
        var data = new Option<string>("--data") { Description = "LLaVA-format JSON lines (the file distill will train on)", Required = true };
        var output = new Option<string>("--out") { Description = "the store's folder; give distill the same as --teacher-features", Required = true };
        var config = new Option<string?>("--config") { Description = "the training config distill will use: its max_length and kl_temperature are part of the store's key" };
        var dtype = new Option<string?>("--dtype") { Description = "the dtype distill will use (fp32 or bf16): with bf16 a teacher stored in BF16 computes in BF16, which gives its own store" };
        var part = new Option<string?>("--part") { Description = "K/N: this process's share, the shards whose index is K-1 modulo N (default 1/1, all)" };
        var allowBad = new Option<bool>("--allow-bad-lines") { Description = "skip unreadable data lines (they are still reported)" };
        var cmd = new Command("teacher-features", "Compute the teacher's stage 1-2 features once, optionally one part per process") { teacher, data, output, config, dtype, part, allowBad };
        cmd.SetAction(r => CliErrors.Run(() =>
        {
            var (k, n) = ParsePart(r.GetValue(part));
            var c = DistillCommand.Configure(r.GetValue(config), null, null, dtype: r.GetValue(dtype));
            return Run(r.GetValue(teacher)!, r.GetValue(data)!, r.GetValue(output)!, c, k, n, r.GetValue(allowBad));
        }));
        return cmd;
    }

    /// <summary>"K/N" with 1 ≤ K ≤ N → (K, N); null → (1, 1).</summary>
    public static (int K, int N) ParsePart(string? text)
    {
        if (text is null) return (1, 1);
        var bits = text.Split('/');
        if (bits.Length == 2 && int.TryParse(bits[0], out int k) && int.TryParse(bits[1], out int n) && n >= 1 && k >= 1 && k <= n) return (k, n);
        throw new ArgumentException($"--part: '{text}' is not K/N with 1 ≤ K ≤ N (for example 1/4)");
    }

    static int Run(string teacherDir, string dataPath, string cacheDir, TrainingConfig config, int k, int n, bool allowBad)
    {
        var loaded = LlavaDataset.Load(dataPath);
        if (loaded.Problems.Count > 0 && !allowBad) throw new InvalidDataException(LlavaDataset.Unusable(dataPath, loaded.Problems).Message + " (allowing bad lines skips them)");
        using var pm = Pretrained.Load(teacherDir);
        ParameterGroups.Freeze(pm.Model);
        MixedPrecision.CastFrozenTeacher(pm, config); // as distill will: the store's key includes the teacher's dtype
        using var collator = new Collator(pm.Model, pm.Tokenizer, config.MaxLength);
        // every example the teacher can encode, as a distill run stores them (whatever its student accepts)
        var examples = loaded.Examples.Where(e => collator.Problem(e) is null).ToList();
        if (examples.Count == 0) throw new InvalidDataException($"{dataPath}: the teacher can encode none of its examples");
        using var store = new TeacherFeatureStore(cacheDir, pm, dataPath, config);
        int shards = store.Fill(examples, collator, k - 1, n);
        AnsiConsole.MarkupLine($"part {k}/{n}: {shards} shard(s); the teacher ran on {store.Computed} example(s) in {store.PassSeconds:F1} s" +
                               (store.PassSeconds > 0 && store.PassTokens > 0 ? $" ({store.PassTokens / store.PassSeconds:N0} tokens/s)" : "") +
                               $"; store: [bold]{Markup.Escape(store.Dir)}[/]");
        int left = loaded.Examples.Count - examples.Count + loaded.Problems.Count;
        if (left > 0) Console.Error.WriteLine($"warning: {left} line(s) of {dataPath} are not stored (unreadable, or the teacher cannot encode them); distill reports them");
        return ExitCodes.Success;
    }
}
