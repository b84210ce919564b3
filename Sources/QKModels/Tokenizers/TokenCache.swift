import Foundation

/// Word → ids memo shared by every call of a tokenizer (and every thread using it).
///
/// Natural text repeats its words endlessly, so after the first few thousand sentences almost
/// every word is a hit and tokenising costs a split plus a dictionary lookup. The cache is
/// bounded: when full it is emptied and refilled, which keeps memory flat on adversarial input
/// at the price of an occasional cold start.
final class TokenCache<Key: Hashable>: @unchecked Sendable {
    private var entries: [Key: [Int32]] = [:]
    private let lock = NSLock()
    private let capacity: Int

    init(capacity: Int = 200_000) { self.capacity = capacity }

    func ids(for key: Key) -> [Int32]? {
        lock.lock(); defer { lock.unlock() }
        return entries[key]
    }

    func store(_ ids: [Int32], for key: Key) {
        lock.lock(); defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = ids
    }
}
