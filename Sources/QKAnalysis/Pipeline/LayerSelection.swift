/// Which layers `qkdb run --layer` decomposes: `2`, `0-3,8`, `all`, or several such options.
///
///     try LayerSelection.parse(["0-2,5"], nLayer: 6)   // [0, 1, 2, 5]
///     try LayerSelection.parse(["all"], nLayer: 6)     // [0, 1, 2, 3, 4, 5]
public enum LayerSelection {
    /// The layers named, in ascending order without repeats; every one must lie in 0..<nLayer.
    public static func parse(_ arguments: [String], nLayer: Int, model: String = "the model") throws -> [Int] {
        var layers = Set<Int>()
        for argument in arguments {
            for part in argument.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if part == "all" { layers.formUnion(0..<nLayer); continue }
                let ends = part.split(separator: "-", omittingEmptySubsequences: false)
                guard (1...2).contains(ends.count), let lo = Int(ends[0]), let hi = Int(ends[ends.count - 1]), lo <= hi else {
                    throw PipelineError("--layer \(argument): expected a layer, a range like 0-3, a list like 0-3,8, or all")
                }
                for l in [lo, hi] where l < 0 || l >= nLayer {
                    throw PipelineError("layer \(l) is out of range: \(model) has layers 0..<\(nLayer)")
                }
                layers.formUnion(lo...hi)
            }
        }
        return layers.sorted()
    }
}
