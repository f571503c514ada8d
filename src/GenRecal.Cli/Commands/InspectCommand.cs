using System.CommandLine;
using GenRecal.Models;
using Spectre.Console;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal inspect: architecture, parameter counts per component, tokenizer and vocabulary.</summary>
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
        var pm = Pretrained.Load(dir);
        var t = pm.Config.Text;
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn("shape");
        var m = pm.Model;
        table.AddRow("embed_tokens", $"{m.CountParameters("model.embed_tokens"):N0}", $"{t.VocabSize} x {t.HiddenSize}");
        table.AddRow("decoder body", $"{m.CountParameters("model.layers"):N0}",
            $"{t.NumHiddenLayers} layers, {t.NumAttentionHeads} heads / {t.NumKeyValueHeads} kv, head_dim {t.HeadDim}, ffn {t.IntermediateSize}");
        table.AddRow("lm_head", t.TieWordEmbeddings ? "tied" : $"{m.CountParameters("lm_head"):N0}", $"{t.HiddenSize} -> {t.VocabSize}");
        if (pm.Vlm is { } vlm)
        {
            var v = vlm.Vision;
            table.AddRow("vision encoder", $"{m.CountParameters("vision_model"):N0}",
                $"{v.ImageSize}px, patch {v.PatchSize}, {v.NumHiddenLayers} layers, width {v.HiddenSize}");
            table.AddRow("projector", $"{m.CountParameters("mlp1"):N0}",
                $"pixel shuffle x{v.ShuffleFactor} -> {vlm.NumImageTokens} image tokens");
        }
        table.AddRow("[bold]total[/]", $"[bold]{m.CountParameters():N0}[/]", "");
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(dir)}[/]: {t.ModelType}, hidden {t.HiddenSize}, rope_theta {t.RopeTheta}");
        AnsiConsole.Write(table);
        var tok = pm.Tokenizer;
        AnsiConsole.MarkupLine($"tokenizer: {Markup.Escape(tok.BaseName)}{(tok.IsCompact ? $" (compact: {tok.VocabSize} of {tok.BaseVocabSize} base ids)" : "")}, vocabulary {tok.VocabSize}");
        AnsiConsole.MarkupLine($"special tokens: {Markup.Escape(string.Join(", ", tok.SpecialTokens.Select(kv => $"{kv.Key}={kv.Value}")))}");
        AnsiConsole.MarkupLine($"chat template: user {Markup.Escape(Quote(tok.Template.UserPrefix))}, assistant {Markup.Escape(Quote(tok.Template.AssistantPrefix))}, end {Markup.Escape(Quote(tok.Template.EndOfTurn))}");
        return ExitCodes.Success;
    }

    static string Quote(string s) => "\"" + s.Replace("\n", "\\n") + "\"";
}
