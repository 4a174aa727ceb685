// swift-tools-version:6.0
// kproxy: a kube-proxy replacement. Data flows one way through the modules below:
//   ObjectSources → Controller → ServiceTable → data planes (NFTablesDataPlane, …) ← kproxy (CLI/agent)
import PackageDescription

let package = Package(
    name: "kproxy",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kproxy", targets: ["kproxy"]),
        .library(name: "Controller", targets: ["Controller"]),
        .library(name: "ServiceTable", targets: ["ServiceTable"]),
        .library(name: "KubeObjects", targets: ["KubeObjects"]),
        .library(name: "ObjectSources", targets: ["ObjectSources"]),
        .library(name: "NFTablesDataPlane", targets: ["NFTablesDataPlane"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // IP addresses, CIDRs, protocols: the vocabulary shared by every other module.
        .target(name: "NetworkTypes"),
        // Kubernetes objects kube-proxy reads (Service, EndpointSlice, Node): decoding and validation.
        .target(name: "KubeObjects", dependencies: ["NetworkTypes", "Yams"]),
        // The immutable, versioned service table for one node, its diff, and the DataPlane protocol.
        .target(name: "ServiceTable", dependencies: [
            "NetworkTypes",
            .product(name: "HashTreeCollections", package: "swift-collections"),
        ]),
        // Objects in, service table out: endpoint selection, incremental rebuild, the sync runner.
        .target(name: "Controller", dependencies: [
            "KubeObjects", "ServiceTable",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "HashTreeCollections", package: "swift-collections"),
        ]),
        // Where objects come from: the manifest folder (embedded default) or a Kubernetes API server
        // (list + watch over AsyncHTTPClient, in-cluster or kubeconfig auth).
        .target(name: "ObjectSources", dependencies: [
            "KubeObjects",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // libnftables, the nft front end as a library (Debian: libnftables-dev).
        .systemLibrary(name: "CNFTables", pkgConfig: "libnftables"),
        // libnetfilter_conntrack: conntrack entries over netlink (Debian: libnetfilter-conntrack-dev).
        .systemLibrary(name: "CNetfilterConntrack", pkgConfig: "libnetfilter_conntrack"),
        // The nftables data plane: renders table updates into a map-centred ruleset and applies
        // them in process through libnftables, one atomic transaction per sync.
        .target(name: "NFTablesDataPlane", dependencies: ["CNFTables", "CNetfilterConntrack", "ServiceTable", "NetworkTypes"]),
        // The node agent: sources → controller → data planes, with its lifecycle.
        .target(name: "Agent", dependencies: [
            "Controller", "KubeObjects", "ServiceTable", "NetworkTypes",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // The command line: `kproxy table`, …
        .executableTarget(name: "kproxy", dependencies: [
            "Agent", "Controller", "ObjectSources", "ServiceTable", "KubeObjects", "NetworkTypes", "NFTablesDataPlane",
            // `kproxy bench` builds its clusters with the harness and times connections with testpod.
            "NetnsHarness", "TestpodKit",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // The pod and client of the end-to-end tests: answers with its name, reports who answered.
        .target(name: "TestpodKit"),
        .executableTarget(name: "testpod", dependencies: [
            "TestpodKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // A small cluster in network namespaces (node, pods, remote node, clients) for data-plane tests
        // and the sandbox demo. Needs root; tests skip without it.
        .target(name: "NetnsHarness", dependencies: ["TestpodKit", "NetworkTypes"]),
        // The demo's sandbox: a pod for every endpoint of a manifest folder (scripts/demo.sh).
        .executableTarget(name: "kproxy-sandbox", dependencies: [
            "NetnsHarness", "KubeObjects", "ObjectSources", "NetworkTypes",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "TestpodKitTests", dependencies: ["TestpodKit"]),
        // Depends on testpod so that `swift test` builds the binary the harness starts in pods.
        .testTarget(name: "NetnsHarnessTests", dependencies: [
            "NetnsHarness", "TestpodKit", "testpod", "kproxy-sandbox", "KubeObjects", "NetworkTypes",
        ]),

        .testTarget(name: "NetworkTypesTests", dependencies: ["NetworkTypes"]),
        // Fixtures: real `kubectl get -o yaml|json` output and API server lists, read with Bundle.module.
        .testTarget(name: "KubeObjectsTests", dependencies: ["KubeObjects", "NetworkTypes"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ServiceTableTests", dependencies: ["ServiceTable"]),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "KubeObjects", "ServiceTable", "NetworkTypes"]),
        .testTarget(name: "NFTablesDataPlaneTests", dependencies: ["NFTablesDataPlane", "ServiceTable", "NetworkTypes"]),
        .testTarget(name: "ObjectSourcesTests", dependencies: ["ObjectSources", "KubeObjects"]),
        // Against a real kube-apiserver built by scripts/kube-apiserver.sh (etcd + apiserver on loopback).
        .testTarget(name: "KubeAPISourceTests", dependencies: [
            "ObjectSources", "KubeObjects", "Controller", "ServiceTable",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        // `kproxy bench` itself runs (tiny sizes, no timing assertions); depends on kproxy so it is built.
        .testTarget(name: "BenchTests", dependencies: ["kproxy", "NetnsHarness", "TestpodKit"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "Controller", "ServiceTable", "ObjectSources", "Yams"]),
    ]
)
