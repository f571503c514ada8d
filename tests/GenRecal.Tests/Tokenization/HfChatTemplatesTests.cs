using System.Text.Json.Nodes;
using GenRecal.Models.Families;
using GenRecal.Tokenization;

namespace GenRecal.Tests.Tokenization;

/// <summary>
/// HF Jinja chat templates against @huggingface/jinja's rendering (tools/chat-templates/render.mjs, fixtures in
/// Fixtures/chat-templates): the layout GenRecal's ChatTemplate gives a conversation must be the string the Jinja
/// template renders, character for character. Nothing expected here is computed by GenRecal's own code.
/// </summary>
public class HfChatTemplatesTests
{
    public static TheoryData<string> Templates => new(Directory.GetFiles(TestSupport.Fixture("chat-templates"), "*.json")
        .Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal));

    static JsonObject FixtureOf(string name) =>
        JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("chat-templates", name + ".json")))!.AsObject();

    static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    [Theory]
    [MemberData(nameof(Templates))]
    public void Layout_equals_the_jinja_rendering(string name)
    {
        var fixture = FixtureOf(name);
        string jinja = fixture["template"]!.GetValue<string>();
        Assert.Equal(jinja, HfChatTemplates.Text(name)); // the embedded text is the one rendered
        var template = HfChatTemplates.Recognise(jinja, fixture["bos_token"]?.GetValue<string>());
        Assert.NotNull(template);
        var failures = new List<string>();
        foreach (var c in fixture["cases"]!.AsArray())
        {
            var turns = c!["messages"]!.AsArray().Select(m => new ChatTurn(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())).ToList();
            string mine = ChatEncoder.Layout(template!, turns, c["add_generation_prompt"]!.GetValue<bool>());
            string expected = c["rendered"]!.GetValue<string>();
            if (mine != expected) failures.Add($"{c["name"]}: expected {Show(expected)}, got {Show(mine)}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Every_embedded_template_has_a_fixture_and_the_templates_differ()
    {
        var names = Directory.GetFiles(TestSupport.Fixture("chat-templates"), "*.json").Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.Equal(7, names.Count);
        Assert.Equal(HfChatTemplates.Names.Count, names.Count);
        Assert.Equal(names.Count, names.Select(n => HfChatTemplates.Text(n!)).Distinct().Count());
    }

    [Fact]
    public void Recognition_is_by_whole_text_ignoring_only_crlf_and_a_final_newline()
    {
        string qwen = FixtureOf("qwen2.5-instruct")["template"]!.GetValue<string>();
        Assert.Equal("Qwen2.5-Instruct", HfChatTemplates.Name(qwen));
        Assert.Equal("Qwen2.5-Instruct", HfChatTemplates.Name(qwen.Replace("\n", "\r\n")));
        Assert.Equal("Qwen2.5-Instruct", HfChatTemplates.Name(qwen.TrimEnd('\n')));
        Assert.Null(HfChatTemplates.Name(qwen.Replace("You are Qwen", "You are Owen")));
        Assert.Null(HfChatTemplates.Name(qwen + " "));
        Assert.Null(HfChatTemplates.Name("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"));
    }

    /// <summary>A copy of a fixture tokenizer directory with tokenizer_config.json's chat_template set (null: removed).</summary>
    static string TokenizerDir(string layout, string? chatTemplate)
    {
        var dir = TestSupport.TempDir();
        foreach (var f in Directory.GetFiles(TestSupport.Fixture("tokenizers", layout))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var path = Path.Combine(dir, ModelTokenizer.HfConfigFileName);
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config.Remove("chat_template");
        if (chatTemplate is not null) config["chat_template"] = chatTemplate;
        File.WriteAllText(path, config.ToJsonString());
        return dir;
    }

    static ModelTokenizer Load(string dir) => ModelFamilies.GenRecal.LoadTokenizer(dir, null!);

    [Fact]
    public void A_recognised_template_gives_its_layout_and_the_prompt_ids_of_the_rendered_text()
    {
        var fixture = FixtureOf("llama3.1-instruct");
        var tok = Load(TokenizerDir("llama3", fixture["template"]!.GetValue<string>()));
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date", tok.Template.SystemPrefix);
        var single = fixture["cases"]![0]!;
        string user = single["messages"]![0]!["content"]!.GetValue<string>();
        var ids = ChatEncoder.EncodePrompt(tok, user, 0);
        Assert.Equal(tok.Encode(single["rendered"]!.GetValue<string>()), ids);
        Assert.Equal(single["rendered"]!.GetValue<string>(), tok.Decode(ids));

        var qwen = Load(TokenizerDir("qwen2", FixtureOf("qwen2-instruct")["template"]!.GetValue<string>()));
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", qwen.Template.SystemPrefix);
    }

    [Fact]
    public void Chat_template_jinja_wins_over_tokenizer_config()
    {
        var dir = TokenizerDir("qwen2", null);
        File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), FixtureOf("qwen2.5-instruct")["template"]!.GetValue<string>());
        Assert.Contains("You are Qwen", Load(dir).Template.SystemPrefix);
    }

    [Fact]
    public void No_chat_template_keeps_chatml()
    {
        var tok = Load(TokenizerDir("qwen2", null));
        Assert.Null(tok.HfChatTemplate);
        Assert.Equal(ChatTemplate.ChatML, tok.Template);
    }

    [Fact]
    public void An_unknown_template_is_refused_naming_the_file_and_the_known_ones()
    {
        // the qwen2 fixture's own template: ChatML without a generation-prompt branch, which ChatEncoder cannot reproduce
        var dir = TokenizerDir("qwen2", JsonNode.Parse(File.ReadAllText(TestSupport.Fixture("tokenizers", "qwen2", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>());
        var e = Assert.Throws<InvalidDataException>(() => Load(dir));
        Assert.Contains(Path.Combine(dir, "tokenizer_config.json"), e.Message);
        Assert.Contains("not one the project can reproduce", e.Message);
        Assert.Contains("Qwen2.5-Instruct", e.Message);
        Assert.Contains("Llama-3.1-Instruct", e.Message);

        var llama32 = TokenizerDir("llama3", "{{- bos_token }}{%- set date_string = strftime_now(\"%d %b %Y\") %}{{- \"Cutting Knowledge Date: December 2023\\n\" }}");
        Assert.Contains("Llama-3.2", Assert.Throws<InvalidDataException>(() => Load(llama32)).Message);
    }

    [Fact]
    public void A_saved_tokenizer_keeps_its_template_over_the_jinja_it_carries()
    {
        var tok = Load(TokenizerDir("llama3", FixtureOf("llama3-instruct")["template"]!.GetValue<string>()));
        Assert.True(tok.Template.TrimUser);
        var saved = TestSupport.TempDir();
        tok.Save(saved);
        var back = Load(saved);
        Assert.True(back.TemplateSaved);
        Assert.Equal(tok.Template, back.Template);
        // the project's own file wins even over a template it could not reproduce
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, ModelTokenizer.HfConfigFileName)))!.AsObject();
        config["chat_template"] = "{{ messages }}";
        File.WriteAllText(Path.Combine(saved, ModelTokenizer.HfConfigFileName), config.ToJsonString());
        Assert.Equal(tok.Template, Load(saved).Template);
    }
}
