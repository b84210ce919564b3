// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "qkdb",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "qkdb", targets: ["qkdb"]),
        .library(name: "QKTensor", targets: ["QKTensor"]),
        .library(name: "QKModels", targets: ["QKModels"]),
        .library(name: "QKTrain", targets: ["QKTrain"]),
        .library(name: "QKStore", targets: ["QKStore"]),
        .library(name: "QKAnalysis", targets: ["QKAnalysis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libzstd-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),

        .target(name: "QKTensor", dependencies: ["CBLAS"]),
        .target(name: "QKModels", dependencies: ["QKTensor"]),
        // Step 2's per-sequence kernel in C: built for the baseline target and again with AVX2+FMA,
        // chosen at run time (Swift cannot compile one function for another CPU level).
        .target(name: "CPairMap"),
        // The SIGINT handler in C: an atomic counter, the only thing a signal handler may touch safely.
        .target(name: "CSignal"),
        .target(name: "QKTrain", dependencies: ["QKTensor", "QKModels", "CPairMap"]),
        .target(name: "QKStore", dependencies: ["QKTensor", "CZstd", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "QKAnalysis", dependencies: ["QKTensor", "QKModels", "QKTrain", "QKStore"]),
        .executableTarget(name: "qkdb", dependencies: [
            "QKTensor", "QKModels", "QKTrain", "QKStore", "QKAnalysis", "CSignal",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "QKTensorTests", dependencies: ["QKTensor"]),
        .testTarget(name: "QKModelsTests", dependencies: ["QKModels"]),
        .testTarget(name: "QKTrainTests", dependencies: ["QKTrain"]),
        .testTarget(name: "QKStoreTests", dependencies: ["QKStore"]),
        .testTarget(name: "QKAnalysisTests", dependencies: ["QKAnalysis"]),
        .testTarget(name: "qkdbTests", dependencies: ["qkdb"]),
    ],
    // Swift 5 language mode: the numeric code shares read-only buffers across threads by design,
    // which Swift 6's strict checking would force through needless wrappers.
    swiftLanguageModes: [.v5]
)
