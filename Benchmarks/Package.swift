// swift-tools-version:6.1
// Benchmarks for kproxy, kept in their own package so the main build and CI stay lean.
// Run: cd Benchmarks && swift package --disable-sandbox benchmark
import PackageDescription

let package = Package(
    name: "kproxy-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "kproxy", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ServiceTableBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Controller", package: "kproxy"),
                .product(name: "ServiceTable", package: "kproxy"),
                .product(name: "KubeObjects", package: "kproxy"),
            ],
            path: "ServiceTableBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
