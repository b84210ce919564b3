import QKTensor
import QKModels

/// Where step-1 training reads its activations: whole sequences (a pattern needs its full context),
/// one at a time, in a fixed order. The trainer shuffles blocks of them itself, sets the first
/// ones aside as the held-out set, and rewinds the source for another epoch if the token budget
/// outlasts the data.
public protocol ActivationSource: AnyObject {
    var geometry: AttentionGeometry { get }
    var layer: Int { get }
    /// The next sequence (a `TrainingBatch` of one), or nil at the end of the data.
    func nextSequence() throws -> TrainingBatch?
    /// Back to the first sequence. Sources that cannot (a one-pass stream) throw.
    func rewind() throws
}

/// Sequences held in memory (tests, planted data, small experiments).
public final class InMemoryActivationSource: ActivationSource {
    public let geometry: AttentionGeometry
    public let layer: Int
    private let sequences: [TrainingBatch]
    private var cursor = 0

    public init(batches: [TrainingBatch], geometry: AttentionGeometry, layer: Int = 0) throws {
        try geometry.validate()
        var seqs: [TrainingBatch] = []
        for b in batches { for i in 0..<b.sequences { seqs.append(b.sequence(i)) } }
        guard let first = seqs.first else { throw TrainError("activation source: no sequences given") }
        for s in seqs where s.length != first.length || s.dModel != first.dModel {
            throw TrainError("activation source: sequences differ in length or width (\(s.length)×\(s.dModel) vs \(first.length)×\(first.dModel))")
        }
        self.geometry = geometry; self.layer = layer; sequences = seqs
    }

    public var count: Int { sequences.count }
    public func nextSequence() throws -> TrainingBatch? {
        guard cursor < sequences.count else { return nil }
        cursor += 1
        return sequences[cursor - 1]
    }
    public func rewind() throws { cursor = 0 }
}

/// Harvests on the fly: runs the model to layer L on each `TokenBatch` the iterator yields
/// (`model.capture(batch, layer:)`) and serves the captured sequences one by one.
/// `rewind` calls `restart`, which must return a fresh iterator over the same batches
/// (nil: a one-pass stream, and the token budget must fit in one pass).
public final class ModelActivationSource: ActivationSource {
    public let model: any TransformerModel
    public let layer: Int
    public let geometry: AttentionGeometry
    private var next: () throws -> TokenBatch?
    private let restart: (() throws -> () throws -> TokenBatch?)?
    private var pending: TrainingBatch?
    private var pendingIndex = 0

    public init(model: any TransformerModel, layer: Int, batches: @escaping () throws -> TokenBatch?,
                restart: (() throws -> () throws -> TokenBatch?)? = nil) throws {
        guard layer >= 0 && layer < model.config.nLayer else {
            throw TrainError("model \(model.source): layer \(layer) is out of range 0..<\(model.config.nLayer)")
        }
        self.model = model; self.layer = layer; geometry = AttentionGeometry(config: model.config)
        next = batches; self.restart = restart
        try geometry.validate()
    }

    public func nextSequence() throws -> TrainingBatch? {
        while pending == nil || pendingIndex >= pending!.sequences {
            guard let tokens = try next() else { return nil }
            pending = try TrainingBatch(model.capture(tokens, layer: layer), geometry: geometry)
            pendingIndex = 0
        }
        pendingIndex += 1
        return pending?.sequence(pendingIndex - 1)
    }

    public func rewind() throws {
        guard let restart else {
            throw TrainError("model \(model.source): the token stream cannot be rewound; lower --train-tokens to fit one pass of the corpus")
        }
        next = try restart(); pending = nil; pendingIndex = 0
    }
}
