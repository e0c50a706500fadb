// Loom, one import: the public API of every module a Swift program needs (models and layers, data sets,
// configs, the trainer and the Keras-style `Model`; tensors and the GradientTape). See the README's "From Swift" section.
@_exported import LoomConfig
@_exported import LoomData
@_exported import LoomEngine
@_exported import LoomNN
@_exported import LoomTape
