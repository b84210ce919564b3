/// The training order over a source: the first `heldOut` sequences are set aside for good; the
/// rest are read in blocks of `blockSize`, each block shuffled by its own RNG state, and served in
/// that order, rewinding the source at its end (a new epoch, again skipping the held-out part).
///
/// Its whole state is (blocks read, RNG state at the current block's start, position in the
/// block), so a checkpoint restores the exact order by re-reading and re-shuffling one block.
struct SequenceStream {
    let source: ActivationSource
    let heldOut: Int
    let blockSize: Int
    private(set) var blocksRead = 0
    private(set) var blockSeed: UInt64 = 0
    private(set) var position = 0
    private var block: [TrainingBatch] = []
    private var rng: TrainingRandom
    private var trainingSequencesSeen = 0

    struct State: Equatable { var blocksRead: Int; var blockSeed: UInt64; var position: Int; var rngState: UInt64 }

    init(source: ActivationSource, heldOut: Int, blockSize: Int, seed: UInt64) {
        self.source = source; self.heldOut = heldOut; self.blockSize = max(1, blockSize)
        rng = TrainingRandom(seed: seed ^ 0x5EED_0F_5EC5)
    }

    /// Reads the held-out sequences: the source's first ones. A source that can rewind is rewound
    /// first (so a trainer may reuse it); a one-pass stream is taken to be fresh.
    mutating func readHeldOut() throws -> [TrainingBatch] {
        try? source.rewind()
        var out: [TrainingBatch] = []
        while out.count < heldOut {
            guard let s = try source.nextSequence() else {
                throw TrainError("activation source: only \(out.count) sequences, fewer than the \(heldOut) held out; add data or hold out fewer")
            }
            out.append(s)
        }
        return out
    }

    /// Next training sequence.
    mutating func next() throws -> TrainingBatch {
        if position >= block.count { try readBlock() }
        position += 1
        return block[position - 1]
    }

    private mutating func nextFromSource() throws -> TrainingBatch {
        if let s = try source.nextSequence() { trainingSequencesSeen += 1; return s }
        guard trainingSequencesSeen > 0 || blocksRead > 0 else {
            throw TrainError("activation source: no sequences left for training after the \(heldOut) held out")
        }
        try source.rewind()
        for _ in 0..<heldOut { _ = try source.nextSequence() }
        guard let s = try source.nextSequence() else {
            throw TrainError("activation source: no sequences left for training after the \(heldOut) held out")
        }
        trainingSequencesSeen = 1
        return s
    }

    private mutating func readBlock() throws {
        blockSeed = rng.state
        block = []
        for _ in 0..<blockSize { block.append(try nextFromSource()) }
        block.shuffle(using: &rng)
        blocksRead += 1; position = 0
    }

    var state: State { State(blocksRead: blocksRead, blockSeed: blockSeed, position: position, rngState: rng.state) }

    /// Puts the stream where `state` was: skips the sequences of the blocks before the current
    /// one, then re-reads and re-shuffles the current block from its saved seed.
    mutating func restore(_ state: State) throws {
        try source.rewind()
        _ = try readHeldOut()
        blocksRead = 0; block = []; position = 0
        guard state.blocksRead > 0 else { rng = TrainingRandom(state: state.rngState); return }
        for _ in 0..<((state.blocksRead - 1) * blockSize) { _ = try nextFromSource() }
        rng = TrainingRandom(state: state.blockSeed)
        try readBlock()
        guard rng.state == state.rngState, blocksRead == 1 else {
            throw TrainError("checkpoint: the data order could not be restored (different source or options?)")
        }
        blocksRead = state.blocksRead; position = state.position
    }
}
