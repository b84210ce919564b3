import Foundation

/// Opens a model by path and picks its architecture from `config.json`'s `model_type`.
///
/// A Hugging Face directory holds `config.json`, `model.safetensors` and tokenizer files.
/// Llama-family models may also be a `.gguf` file or a folder holding one (`loadLlamaModel`).
/// Every failure (missing folder or file, corrupt weights, unknown type) is one error line
/// naming the path at fault.
public func loadModel(path: String) throws -> any TransformerModel {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ModelError("\(path): model folder does not exist")
    }
    if let llama = try loadLlamaModel(path: path) { return llama }
    guard isDirectory.boolValue else {
        throw ModelError("\(path): not a model folder (expected a directory with config.json and model.safetensors, or a .gguf file)")
    }
    let configPath = (path as NSString).appendingPathComponent("config.json")
    guard FileManager.default.fileExists(atPath: configPath) else {
        throw ModelError("\(configPath): missing (a model folder needs config.json, or one .gguf file)")
    }
    let config = try HFConfig(path: configPath)
    switch config.modelType {
    case "gpt2": return try GPT2Model(directory: path, configFile: config)
    case "bert": return try BertModel(directory: path, configFile: config)
    case let other:
        throw ModelError("\(configPath): unknown model_type '\(other ?? "none")' (supported: gpt2, bert, llama)")
    }
}
