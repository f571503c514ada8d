using GenRecal.Models;
using GenRecal.Recalibration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>
/// Which tensors train in which stage (docs/METHOD.md, "Losses and stages"). Freezing is explicit: every parameter of the
/// teacher, student and Recalibrator gets requires_grad set for the stage, and only the trainable ones reach
/// the optimizer.
/// </summary>
public static class ParameterGroups
{
    public static List<Parameter> Configure(Stage stage, CausalLanguageModel student, Recalibrator? recalibrator,
                                            CausalLanguageModel? teacher, TrainingConfig config)
    {
        if (teacher is not null) Freeze(teacher);
        var components = StudentComponents(stage, config);
        var trainable = student.SetTrainable(components);
        student.SetTrainable(Enum.GetValues<ModelComponent>().Except(components).ToHashSet(), trainable: false);
        if (recalibrator is not null)
        {
            bool train = config.RecalibratorTrains(stage);
            foreach (var p in recalibrator.parameters())
            {
                p.requires_grad = train;
                if (train) trainable.Add(p);
                else p.grad = null; // stage 1's gradients would sit in memory through stages 2-3
            }
        }
        return trainable;
    }

    /// <summary>Student components trained in a stage (docs/METHOD.md's stages; the vision encoder only on request).</summary>
    public static HashSet<ModelComponent> StudentComponents(Stage stage, TrainingConfig config)
    {
        HashSet<ModelComponent> set = stage switch
        {
            Stage.Alignment => [],
            Stage.Distillation => config.TrainVisionEncoder ? [ModelComponent.Body, ModelComponent.Projector] : [ModelComponent.Body],
            _ => [ModelComponent.Body, ModelComponent.Head, ModelComponent.Projector],
        };
        if (config.TrainVisionEncoder && stage is not Stage.Alignment) set.Add(ModelComponent.VisionEncoder);
        return set;
    }

    public static void Freeze(nn.Module module)
    {
        foreach (var p in module.parameters()) p.requires_grad = false;
    }
}
