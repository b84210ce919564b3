import Foundation
import QKModels
import QKStore

/// Finds the model a stored run was trained on, so a store copied to another machine or folder
/// (or a model folder that moved) still works. A run records its model's path and content
/// (`PipelineOptions.modelFingerprint`). `--model` wins when given; otherwise the recorded path,
/// the same path relative to the store's folder, the folder's name beside the store, and
/// `models/NAME` under the working directory are tried in that order. A folder is accepted only
/// if its fingerprint matches the recorded one (runs from before fingerprints accept any).
public enum RunModel {
    /// No candidate folder holds the run's model: commands that can do without it say so.
    public struct Missing: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// The path of the run's model (checked, not loaded).
    public static func locate(run: Int64, options: PipelineOptions, storePath: String, given: String?) throws -> String {
        let recorded = options.model
        func matches(_ path: String) throws -> Bool {
            guard let want = options.modelFingerprint else { return true }
            return try ModelFingerprint.of(path: path) == want
        }
        if let given {
            guard FileManager.default.fileExists(atPath: given) else { throw ModelError("\(given): model folder does not exist") }
            guard try matches(given) else {
                throw PipelineError("\(given): not the model run \(run) was trained on (its weights or config differ from \(recorded)'s, fingerprint \(options.modelFingerprint ?? ""))")
            }
            return given
        }
        let storeDir = URL(fileURLWithPath: storePath).deletingLastPathComponent()
        let name = URL(fileURLWithPath: recorded).lastPathComponent
        var candidates: [String] = [], seen = Set<String>()
        let relativeToStore: String? = recorded.hasPrefix("/") ? nil : storeDir.appendingPathComponent(recorded).path
        let tries: [String?] = [recorded, relativeToStore, storeDir.appendingPathComponent(name).path, "models/" + name]
        for c in tries.compactMap({ $0 })
        where seen.insert(URL(fileURLWithPath: c).standardizedFileURL.path).inserted {
            candidates.append(c)   // each folder once, however it is spelled
        }
        var mismatched: [String] = []
        for c in candidates where FileManager.default.fileExists(atPath: c) {
            if (try? matches(c)) == true { return c }
            mismatched.append(c)
        }
        let tried = candidates.joined(separator: ", ")
        let why = mismatched.isEmpty ? "" : " (\(mismatched.joined(separator: ", ")) \(mismatched.count == 1 ? "holds" : "hold") a different model)"
        throw Missing(message: "run \(run)'s model \(recorded) was not found (tried \(tried))\(why); pass --model DIR")
    }

    /// Locates and loads the run's model.
    public static func load(run: Int64, options: PipelineOptions, storePath: String, given: String?) throws -> any TransformerModel {
        try loadModel(path: locate(run: run, options: options, storePath: storePath, given: given))
    }
}
