using GenRecal.Models;
using GenRecal.Recalibration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GenRecal.Training;

/// <summary>
/// Which tensors train in which stage (GENRECAL.md, "Stages"). Freezing is explicit: every parameter of the
/// teacher, student and Recalibrator gets requires_grad set for the stage, and only the trainable ones reach
/// the optimizer.
/// </summary>
public static class ParameterGroups
{
    public static List<Parameter> Configure(Stage stage, CausalLanguageModel student, Recalibrator? recalibrator,
                                            CausalLanguageModel? teacher, TrainingConfig config)
    {
        if (teacher is not null) Freeze(teacher);
        var trainable = new List<Parameter>();
        foreach (var (name, p) in student.named_parameters())
        {
            bool train = stage switch
            {
                Stage.Alignment => false,
                // the student's VLM-body: embeddings, decoder stack, final norm
                Stage.Distillation => name.StartsWith("model.", StringComparison.Ordinal)
                                      || (config.TrainVisionEncoder && !name.StartsWith("lm_head.", StringComparison.Ordinal)),
                // the whole student but its vision encoder
                _ => config.TrainVisionEncoder || !name.StartsWith("vision_model.", StringComparison.Ordinal),
            };
            p.requires_grad = train;
            if (train) trainable.Add(p);
        }
        if (recalibrator is not null)
        {
            bool train = stage == Stage.Alignment || (stage == Stage.Distillation && config.TrainRecalibratorInStage2);
            foreach (var p in recalibrator.parameters())
            {
                p.requires_grad = train;
                if (train) trainable.Add(p);
            }
        }
        return trainable;
    }

    public static void Freeze(nn.Module module)
    {
        foreach (var p in module.parameters()) p.requires_grad = false;
    }
}
