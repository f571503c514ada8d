using GenRecal.Models;
var m = new VisionLanguageModel(new ModelConfig(new LanguageModelConfig{VocabSize=10,HiddenSize=8,IntermediateSize=8,NumHiddenLayers=1,NumAttentionHeads=2,NumKeyValueHeads=1,HeadDim=4}, new VisionConfig{ImageSize=8,PatchSize=4,HiddenSize=8,IntermediateSize=8,NumHiddenLayers=1,NumAttentionHeads=2}, 3));
foreach (var (n, p) in m.named_parameters()) Console.WriteLine(n);
