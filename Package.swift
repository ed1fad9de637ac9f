// swift-tools-version:6.0
import Foundation
import PackageDescription

let package = Package(
    name: "adapterd",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AdapterEngine", targets: ["AdapterEngine"]),
        .library(name: "InputRouting", targets: ["InputRouting"]),
        .library(name: "AdapterTraining", targets: ["AdapterTraining"]),
        .library(name: "MQTTRPC", targets: ["MQTTRPC"]),
        .library(name: "AdapterRuntime", targets: ["AdapterRuntime"]),
        .library(name: "AdapterdCore", targets: ["AdapterdCore"]),
        .library(name: "AdapterdClient", targets: ["AdapterdClient"]),
        .executable(name: "adapterd", targets: ["adapterd"]),
        .executable(name: "adapterctl", targets: ["adapterctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // Debian's libdnnl-dev (oneDNN 2.6, OpenMP runtime): the FP32 and u8s8s32 GEMMs, chosen by measurement over
        // OpenBLAS and BLIS (Benchmarks/README.md).
        .systemLibrary(
            name: "CDNNL",
            path: "Sources/CDNNL",
            providers: [.apt(["libdnnl-dev"])]
        ),
        // The engine's element-wise and attention kernels in C, one copy per instruction set, chosen at run time.
        // -O2 in debug builds too: the test suites run the engine hundreds of times, and unvectorised kernels
        // would dominate their time.
        .target(
            name: "CEngineKernels",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("gomp")]
        ),
        // Makes background (load, training) threads yield their CPU every few hundred microseconds while they work.
        .target(name: "CBackgroundYield"),
        // Debian's libsqlite3-dev: the fleet controller's state file (adapterctl links no database framework).
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // Fleet rollouts: discovery from retained statuses, waves gated on the workers' metrics, resumable state.
        .target(
            name: "FleetControl",
            dependencies: [
                "AdapterdAPI", "AdapterdClient", "AdapterEngine", "AdapterFormats", "AdapterTraining", "CanaryJudging", "CSQLite",
                "FederatedLearning", "MQTTRPC",
            ]
        ),
        // The one canary judge: whether a new version serves worse than the one it replaces (the worker's rollout
        // guard and the fleet controller's waves).
        .target(name: "CanaryJudging"),
        // Debian's libmosquitto-dev (2.0): the MQTT 5 client library.
        .systemLibrary(
            name: "CMosquitto",
            path: "Sources/CMosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .target(
            name: "AdapterEngine",
            dependencies: ["CDNNL", "CEngineKernels", "CBackgroundYield"]
        ),
        // Input routers: small classifiers over the base model's first layers that pick an adapter from the text.
        .target(
            name: "InputRouting",
            dependencies: ["AdapterEngine"],
            // Optimised in debug builds too: fitting runs thousands of L-BFGS steps, and the test suites fit routers.
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        // On-device training: LoRA and classifier gradients through the frozen base model, AdamW, PEFT's files.
        .target(
            name: "AdapterTraining",
            dependencies: ["AdapterEngine"],
            // Optimised in debug builds too: the test suites train adapters.
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        // Federated training: the round's local training, aggregation (FFA-LoRA), differential privacy and its
        // accountant; shared by the worker, the fleet controller and the study.
        .target(
            name: "FederatedLearning",
            dependencies: ["AdapterEngine", "AdapterTraining"],
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        // Swift code generated from schemas/adapterd.proto (scripts/generate-protos), committed.
        .target(
            name: "AdapterdAPI",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(
            name: "MQTTRPC",
            dependencies: [
                "CMosquitto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What client and worker share about adapters: names, the content digest, push bundles, manifests, signatures.
        .target(
            name: "AdapterFormats",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // The client side of the worker's RPC: client, pusher, topics, message conformances, status and metrics documents.
        .target(
            name: "AdapterdClient",
            dependencies: [
                "AdapterdAPI", "AdapterFormats", "MQTTRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Adapter lifecycle state: the content-addressed store and its SQLite registry.
        .target(
            name: "AdapterRuntime",
            dependencies: [
                "AdapterEngine", "AdapterFormats", "CanaryJudging", "CBackgroundYield", "InputRouting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "AdapterdCore",
            dependencies: [
                "AdapterEngine", "AdapterRuntime", "AdapterTraining", "FederatedLearning", "AdapterdAPI", "AdapterdClient", "AdapterFormats", "CanaryJudging",
                "InputRouting", "MQTTRPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The worker's HTTP listener: Prometheus exposition, health and readiness, the dashboard.
        .target(
            name: "AdapterdHTTP",
            dependencies: [
                "AdapterdCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Dashboard")]
        ),
        .executableTarget(
            name: "adapterd",
            dependencies: [
                "AdapterdCore", "AdapterdHTTP", "AdapterEngine", "AdapterRuntime", "MQTTRPC",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "adapterctl",
            dependencies: [
                "AdapterEngine", "AdapterFormats", "AdapterTraining", "AdapterdAPI", "AdapterdClient", "CanaryJudging", "FleetControl", "InputRouting",
                "MQTTRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "EngineBenchmark",
            dependencies: ["AdapterEngine"],
            path: "Benchmarks/EngineBenchmark"
        ),
        // The federated study: central vs local-only vs federated training on a non-IID split, in process.
        .executableTarget(
            name: "FederatedBenchmark",
            dependencies: ["AdapterEngine", "AdapterTraining", "FederatedLearning"],
            path: "Benchmarks/FederatedBenchmark"
        ),
        .executableTarget(
            name: "LifecycleBenchmark",
            dependencies: ["AdapterEngine", "AdapterRuntime", "AdapterdCore"],
            path: "Benchmarks/LifecycleBenchmark"
        ),
        .executableTarget(
            name: "MQTTBenchmark",
            dependencies: [
                "AdapterEngine", "AdapterFormats", "AdapterdAPI", "AdapterdClient", "AdapterdCore", "FederatedLearning", "InputRouting", "MQTTRPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/MQTTBenchmark"
        ),
        // A bounded soak of an adapterd process at a steady request rate: replies lost or doubled, latency and
        // the worker's resident memory over time.
        .executableTarget(
            name: "SoakBenchmark",
            dependencies: ["AdapterdCore", "MQTTRPC"],
            path: "Benchmarks/SoakBenchmark"
        ),
        // Helpers every test target shares: a real broker, an in-process worker, raw and RPC clients, the
        // reference outputs.
        .target(
            name: "AdapterdTestSupport",
            dependencies: [
                "AdapterEngine", "AdapterFormats", "AdapterRuntime", "InputRouting", "AdapterdAPI", "AdapterdClient", "AdapterdCore", "MQTTRPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/AdapterdTestSupport"
        ),
        .testTarget(
            name: "AdapterEngineTests",
            dependencies: ["AdapterEngine", "AdapterdTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "CanaryJudgingTests",
            dependencies: ["CanaryJudging"]
        ),
        .testTarget(
            name: "InputRoutingTests",
            dependencies: ["InputRouting", "AdapterEngine", "AdapterFormats", "AdapterdTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FederatedLearningTests",
            dependencies: ["FederatedLearning", "AdapterTraining"]
        ),
        .testTarget(
            name: "AdapterTrainingTests",
            dependencies: ["AdapterTraining", "AdapterEngine"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "AdapterRuntimeTests",
            dependencies: ["AdapterRuntime", "AdapterEngine", "AdapterFormats"]
        ),
        .testTarget(
            name: "AdapterdCoreTests",
            dependencies: [
                "AdapterdCore", "AdapterdClient", "AdapterdAPI", "AdapterEngine", "AdapterFormats", "AdapterRuntime", "AdapterdTestSupport",
                "CanaryJudging", "FleetControl", "InputRouting", "MQTTRPC",
            ]
        ),
        .testTarget(
            name: "AdapterdHTTPTests",
            dependencies: [
                "AdapterdHTTP", "AdapterdCore", "AdapterdClient", "AdapterdAPI", "AdapterdTestSupport", "MQTTRPC",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (Fuzz/), declared only for scripts/fuzz, which builds them with -sanitize=fuzzer in a scratch
// directory of their own (libFuzzer supplies their main; a normal build would have none).
if ProcessInfo.processInfo.environment["ADAPTERD_FUZZ"] == "1" {
    let fuzzers: [(String, [Target.Dependency])] = [
        ("FuzzSafeTensors", ["AdapterEngine"]),
        ("FuzzAdapterConfig", ["AdapterEngine"]),
        ("FuzzTokenizer", ["AdapterEngine"]),
        ("FuzzRPCBody", ["AdapterdAPI", "MQTTRPC"]),
        ("FuzzPushBundle", ["AdapterFormats"]),
        ("FuzzConfigFile", ["AdapterdCore"]),
        // The control methods' handlers, through the RPC server over real services (FuzzSupport's harness).
        ("FuzzPushAdapter", ["FuzzSupport"]),
        ("FuzzTrainAdapter", ["FuzzSupport"]),
        ("FuzzFeedback", ["FuzzSupport"]),
        ("FuzzFederatedRound", ["FuzzSupport"]),
        ("FuzzSetRoute", ["FuzzSupport"]),
        ("FuzzRouteMethods", ["FuzzSupport"]),
    ]
    package.targets.append(.target(
        name: "FuzzSupport", dependencies: ["AdapterdAPI", "AdapterdClient", "AdapterdCore", "MQTTRPC", .product(name: "Logging", package: "swift-log")],
        path: "Fuzz/FuzzSupport"))
    for (name, dependencies) in fuzzers {
        package.targets.append(.executableTarget(name: name, dependencies: dependencies, path: "Fuzz/\(name)"))
    }
}
