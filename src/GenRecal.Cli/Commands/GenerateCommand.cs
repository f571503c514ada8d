using System.CommandLine;
using System.Text.Json.Nodes;
using GenRecal.Data;
using GenRecal.Evaluation;
using GenRecal.Models;
using GenRecal.Tokenization;
using static TorchSharp.torch;

namespace GenRecal.Cli.Commands;

/// <summary>genrecal generate: continue a prompt with a model (greedy unless a temperature is given).</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "model directory (HF layout)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "the user message, or plain text with --raw", Required = true };
        var image = new Option<string?>("--image") { Description = "PNG or JPEG image for a VLM" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens to generate at most", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "sampling temperature; 0 = greedy", DefaultValueFactory = _ => 0 };
        var topP = new Option<double>("--top-p") { Description = "nucleus sampling mass", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long>("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 };
        var raw = new Option<bool>("--raw") { Description = "continue the prompt as plain text, no chat template" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var cmd = new Command("generate", "Generate a continuation with a model") { model, prompt, image, maxNew, temperature, topP, seed, raw, json };
        cmd.SetAction(r => CliErrors.Run(() => Run(r.GetValue(model)!, r.GetValue(prompt)!, r.GetValue(image), new GenerationOptions
        {
            MaxNewTokens = r.GetValue(maxNew), Temperature = r.GetValue(temperature), TopP = r.GetValue(topP), Seed = r.GetValue(seed),
        }, r.GetValue(raw), r.GetValue(json))));
        return cmd;
    }

    static int Run(string modelDir, string prompt, string? imagePath, GenerationOptions options, bool raw, bool asJson)
    {
        if (options.MaxNewTokens < 1) throw new ArgumentException("--max-new-tokens must be at least 1");
        // written as !(in range) so NaN, which fails every comparison, is refused too
        if (!(options.TopP > 0 && options.TopP <= 1)) throw new ArgumentException($"--top-p must be in (0, 1], found {options.TopP}");
        if (!(options.Temperature >= 0) || double.IsInfinity(options.Temperature)) throw new ArgumentException($"--temperature must be 0 (greedy) or a positive finite number, found {options.Temperature}");
        if (prompt.Length > LlavaDataset.MaxTurnChars) throw new ArgumentException($"--prompt has {prompt.Length} characters; the limit is {LlavaDataset.MaxTurnChars}");
        var pm = Pretrained.Load(modelDir);
        var tok = pm.Tokenizer;
        ImageBatch? images = null;
        int imageTokens = 0;
        if (imagePath is not null)
        {
            if (raw) throw new ArgumentException("--raw cannot be combined with --image");
            var vlm = pm.Vlm ?? throw new ArgumentException($"{modelDir}: --image given but the model has no vision encoder");
            var image = vlm.LoadImage(imagePath);
            images = ImageBatch.Of([image]);
            imageTokens = vlm.ImageTokens(image);
        }
        else if (!raw && prompt.Contains(tok.Template.ImagePlaceholder))
            throw new ArgumentException($"the prompt contains {tok.Template.ImagePlaceholder} but no --image was given");
        // the image block goes where the prompt has the placeholder, else on a line before it, as the family's chat() does
        var ids = raw ? tok.Encode(prompt) : ChatEncoder.EncodePrompt(tok, prompt, imageTokens);
        PromptLimits.Check(pm, ids.Length, options.MaxNewTokens, "--prompt", ids);
        var stop = raw ? new[] { tok.PadId } : new[] { tok.EndOfTurnId, tok.PadId };
        var output = TextGenerator.Generate(pm.Model, ids, options with { StopTokens = stop }, images);
        var text = tok.Decode(output, skipSpecial: true);
        if (asJson)
            Console.WriteLine(new JsonObject
            {
                ["text"] = text,
                ["prompt_token_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                ["token_ids"] = new JsonArray(output.Select(i => (JsonNode)i).ToArray()),
            }.ToJsonString());
        else Console.WriteLine(text);
        return ExitCodes.Success;
    }
}
