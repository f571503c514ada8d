namespace GenRecal.Models;

/// <summary>The boxes of the VLM diagram, for freezing by component.</summary>
public enum ModelComponent
{
    VisionEncoder,
    Projector,
    /// <summary>The VLM-body: token embeddings, decoder stack, final norm (HF prefix model.).</summary>
    Body,
    Head,
}

public static class ModelComponents
{
    /// <summary>The component a parameter belongs to, from its HF name.</summary>
    public static ModelComponent Of(string parameterName) => parameterName switch
    {
        _ when parameterName.StartsWith("vision_model.", StringComparison.Ordinal) => ModelComponent.VisionEncoder,
        _ when parameterName.StartsWith("mlp1.", StringComparison.Ordinal) => ModelComponent.Projector,
        _ when parameterName.StartsWith("model.", StringComparison.Ordinal) => ModelComponent.Body,
        _ when parameterName.StartsWith("lm_head.", StringComparison.Ordinal) => ModelComponent.Head,
        _ => throw new ArgumentException($"parameter '{parameterName}' belongs to no known component"),
    };

    /// <summary>Sets requires_grad on every parameter of the given components (and drops the gradient of those it freezes);
    /// returns the parameters touched.</summary>
    public static List<TorchSharp.Modules.Parameter> SetTrainable(this CausalLanguageModel model, IReadOnlySet<ModelComponent> components, bool trainable = true)
    {
        var touched = new List<TorchSharp.Modules.Parameter>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!components.Contains(Of(name))) continue;
            p.requires_grad = trainable;
            if (!trainable) p.grad = null; // a frozen parameter keeps no gradient from an earlier stage (memory)
            touched.Add(p);
        }
        return touched;
    }
}
