namespace GenRecal.Training;

/// <summary>A training stage stopped on purpose (NaN/Inf loss); the last good checkpoint is kept.</summary>
public sealed class TrainingStoppedException(string message) : Exception(message);
