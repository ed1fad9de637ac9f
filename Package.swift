// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "adapterd",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AdapterEngine", targets: ["AdapterEngine"]),
        .executable(name: "adapterctl", targets: ["adapterctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Debian's libopenblas-dev: cblas.h and libopenblas.so.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "AdapterEngine",
            dependencies: ["COpenBLAS"]
        ),
        .executableTarget(
            name: "adapterctl",
            dependencies: [
                "AdapterEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "EngineBenchmark",
            dependencies: ["AdapterEngine"],
            path: "Benchmarks/EngineBenchmark"
        ),
        .testTarget(
            name: "AdapterEngineTests",
            dependencies: ["AdapterEngine"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
