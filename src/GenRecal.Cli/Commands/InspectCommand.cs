using System.CommandLine;
using GenRecal.Models;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal inspect: the family, parameter counts per component, the image-token rule, tokenizer and template.</summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "model directory (HF layout)", Required = true };
        var cmd = new Command("inspect", "Describe a model directory") { model };
        cmd.SetAction(r => CliErrors.Run(() => Run(r.GetValue(model)!)));
        return cmd;
    }

    static int Run(string dir)
    {
        using var pm = Pretrained.Load(dir);
        var t = pm.Config.Text;
        var m = pm.Model;
        var family = pm.Config.Family;
        // parameter counts per component, under the checkpoint's own key names
        long Count(ModelComponent c) => m.named_parameters().Where(p => ModelComponents.Of(p.name) == c).Sum(p => p.parameter.numel());
        // the checkpoint's own prefix of a component: what the family's names of its weights have in common
        string Prefix(string ours)
        {
            var keys = m.named_parameters().Where(p => p.name.StartsWith(ours + ".", StringComparison.Ordinal)).Select(p => family.CheckpointKey(p.name, pm.Config)).ToList();
            if (keys.Count == 0) return ours;
            var common = keys.Aggregate((a, b) => new string(a.Zip(b).TakeWhile(p => p.First == p.Second).Select(p => p.First).ToArray()));
            return common[..Math.Max(0, common.LastIndexOf('.'))];
        }
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("checkpoint keys").NoWrap()).AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
        if (pm.Vlm is not null)
        {
            var v = pm.Config.Vision;
            table.AddRow("vision encoder", Prefix("vision_model"), $"{Count(ModelComponent.VisionEncoder):N0}", v is null ? family.Name :
                $"{v.TileSize}px tiles, patch {v.PatchSize}, {v.NumHiddenLayers} layers (output of {v.LayersUsed}), width {v.HiddenSize}" +
                $"{(v.ClassToken ? ", class token" : "")}{(v.LayerScale ? ", layer scale" : "")}{(v.QkNormalization ? ", qk-norm" : "")}, {v.NormType}");
            table.AddRow("projector", Prefix("mlp1"), $"{Count(ModelComponent.Projector):N0}",
                v is null ? $"to {t.HiddenSize}" : $"pixel shuffle x{v.ShuffleFactor} ({v.PixelShuffleVersion}), MLP to {t.HiddenSize}");
        }
        table.AddRow("body", Prefix("model"), $"{Count(ModelComponent.Body):N0}",
            $"{t.ModelType}: embeddings {t.VocabSize} x {t.HiddenSize}, {t.NumHiddenLayers} layers, {t.NumAttentionHeads} heads / {t.NumKeyValueHeads} kv, head_dim {t.HeadDim}, ffn {t.IntermediateSize}");
        table.AddRow("head", t.TieWordEmbeddings ? "(tied to the embeddings)" : Prefix("lm_head"), t.TieWordEmbeddings ? "tied" : $"{Count(ModelComponent.Head):N0}", $"{t.HiddenSize} -> {t.VocabSize}");
        table.AddRow("[bold]total[/]", "", $"[bold]{m.CountParameters():N0}[/]", "");
        Console.WriteLine($"{dir}: family {family.Name} ({family.Covers}), rope_theta {t.RopeTheta}");
        AnsiConsole.Write(table);
        // plain lines (not Spectre markup, which wraps at the console width): long values stay whole when piped
        Console.WriteLine($"images: {family.ImageRule(pm.Config)}" + (pm.Config.ImageTokenId is { } img ? $"; image token id {img}" : ""));
        var tok = pm.Tokenizer;
        Console.WriteLine($"tokenizer: {tok.BaseName}{(tok.IsCompact ? $" (compact: {tok.VocabSize} of {tok.BaseVocabSize} base ids)" : "")}, vocabulary {tok.VocabSize}");
        Console.WriteLine($"special tokens: {string.Join(", ", tok.SpecialTokens.OrderBy(kv => kv.Value).Take(24).Select(kv => $"{kv.Key}={kv.Value}"))}{(tok.SpecialTokens.Count > 24 ? $" (+{tok.SpecialTokens.Count - 24} more)" : "")}");
        var tpl = tok.Template;
        Console.WriteLine($"chat template{(pm.Config.TemplateName is { } name ? $" '{name}'" : "")}: " +
            $"{(tpl.SystemPrefix.Length > 0 ? $"system {Quote(tpl.SystemPrefix)}, " : "")}user {Quote(tpl.UserPrefix)}, " +
            $"assistant {Quote(tpl.AssistantPrefix)}, end {Quote(tpl.EndOfTurn)}, image {Quote(tpl.ImageBlock(1))}");
        return ExitCodes.Success;
    }

    static string Quote(string s) => "\"" + s.Replace("\n", "\\n") + "\"";
}
