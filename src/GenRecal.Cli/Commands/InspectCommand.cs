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
        string Prefix(string ours) => family.CheckpointKey(ours + ".")[..^1];
        var table = new Table().AddColumn("component").AddColumn("checkpoint keys").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
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
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(dir)}[/]: family {Markup.Escape(family.Name)}, rope_theta {t.RopeTheta}");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"images: {Markup.Escape(family.ImageRule(pm.Config))}" + (pm.Config.ImageTokenId is { } img ? $"; image token id {img}" : ""));
        var tok = pm.Tokenizer;
        AnsiConsole.MarkupLine($"tokenizer: {Markup.Escape(tok.BaseName)}{(tok.IsCompact ? $" (compact: {tok.VocabSize} of {tok.BaseVocabSize} base ids)" : "")}, vocabulary {tok.VocabSize}");
        AnsiConsole.MarkupLine($"special tokens: {Markup.Escape(string.Join(", ", tok.SpecialTokens.OrderBy(kv => kv.Value).Take(24).Select(kv => $"{kv.Key}={kv.Value}")))}{(tok.SpecialTokens.Count > 24 ? $" (+{tok.SpecialTokens.Count - 24} more)" : "")}");
        var tpl = tok.Template;
        AnsiConsole.MarkupLine($"chat template{(pm.Config.TemplateName is { } name ? $" '{Markup.Escape(name)}'" : "")}: " +
            $"{(tpl.SystemPrefix.Length > 0 ? $"system {Markup.Escape(Quote(tpl.SystemPrefix))}, " : "")}user {Markup.Escape(Quote(tpl.UserPrefix))}, " +
            $"assistant {Markup.Escape(Quote(tpl.AssistantPrefix))}, end {Markup.Escape(Quote(tpl.EndOfTurn))}, image {Markup.Escape(Quote(tpl.ImageBlock(1)))}");
        return ExitCodes.Success;
    }

    static string Quote(string s) => "\"" + s.Replace("\n", "\\n") + "\"";
}
