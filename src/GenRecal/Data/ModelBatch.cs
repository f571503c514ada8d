using static TorchSharp.torch;

namespace GenRecal.Data;

/// <summary>
/// One model's view of a batch: its own token ids (right-padded), mask, next-token labels (-100 where not
/// trained, aligned with the ids: label[t] is the token at t), pixels for its own image size, and per row
/// the index of the first answer token and the real length.
/// </summary>
public sealed class ModelBatch : IDisposable
{
    public required Tensor InputIds { get; init; }      // [B, T] int64
    public required Tensor AttentionMask { get; init; } // [B, T] int64, 1 = token
    public required Tensor Labels { get; init; }        // [B, T] int64, -100 = ignore
    public Tensor? Pixels { get; init; }                // [tiles, C, H, W] or a patch sequence
    public IReadOnlyList<GenRecal.Models.ImageGrid>? Grids { get; init; } // per image, for patch-sequence encoders
    public required int[] AnswerStart { get; init; }
    public required int[] Lengths { get; init; }
    public long Tokens => Lengths.Sum();

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); Labels.Dispose(); Pixels?.Dispose();
    }
}
