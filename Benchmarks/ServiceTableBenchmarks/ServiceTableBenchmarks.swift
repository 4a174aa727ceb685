import Benchmark
import Controller
import KubeObjects
import ServiceTable

/// 10,000 services × 10 endpoints, as Kubernetes objects.
struct Cluster {
    let services: [Service]
    let slices: [EndpointSlice]

    init(services count: Int, endpoints: Int) {
        var services: [Service] = []
        var slices: [EndpointSlice] = []
        services.reserveCapacity(count)
        slices.reserveCapacity(count)
        for i in 0..<count {
            let name = "svc-\(i)"
            let ip = "10.96.\(i / 250).\(i % 250 + 1)"
            services.append(Service(metadata: ObjectMeta(name: name, namespace: "bench"),
                                    spec: ServiceSpec(clusterIP: ip, ports: [ServicePort(name: "http", port: 80)])))
            let eps = (0..<endpoints).map { e in
                SliceEndpoint(addresses: ["10.\(128 + e).\(i / 250).\(i % 250 + 1)"],
                              nodeName: e % 3 == 0 ? "node-a" : "node-b")
            }
            slices.append(EndpointSlice(
                metadata: ObjectMeta(name: "\(name)-abc", namespace: "bench",
                                     labels: [WellKnownLabels.serviceName: name]),
                addressType: .ipv4, endpoints: eps,
                ports: [EndpointPort(name: "http", protocol: .tcp, port: 8080)]))
        }
        self.services = services
        self.slices = slices
    }

    func builder() -> TableBuilder {
        var b = TableBuilder(nodeName: "node-a")
        for s in services { b.apply(.upsert(.service(s))) }
        for s in slices { b.apply(.upsert(.endpointSlice(s))) }
        return b
    }
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .cpuTotal, .peakMemoryResident, .mallocCountTotal]
    let cluster = Cluster(services: 10_000, endpoints: 10)

    Benchmark("Build table: 10k services x 10 endpoints",
              configuration: .init(metrics: metrics, maxDuration: .seconds(20), maxIterations: 10)) { benchmark in
        for _ in benchmark.scaledIterations {
            var b = cluster.builder()
            blackHole(b.build())
        }
    }

    // The baseline for the incremental rebuild below, measured in the same run: a full
    // comparison of two 10k tables, i.e. what a non-incremental design would pay per change.
    Benchmark("Full diff of two 10k tables (baseline)",
              configuration: .init(metrics: metrics, maxDuration: .seconds(10), maxIterations: 50)) { benchmark in
        var b = cluster.builder()
        let before = b.build().table
        var slice = cluster.slices[5000]
        slice.endpoints![0].conditions = EndpointConditions(ready: false)
        b.apply(.upsert(.endpointSlice(slice)))
        let after = b.build().table
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(TableDiff.between(before, after)) }
    }

    Benchmark("Rebuild + diff after one endpoint of one service changes (10k services)",
              configuration: .init(metrics: metrics, maxDuration: .seconds(10), maxIterations: 100_000)) { benchmark in
        var b = cluster.builder()
        _ = b.build()
        var ready = cluster.slices[5000]
        var notReady = ready
        notReady.endpoints![0].conditions = EndpointConditions(ready: false)
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            b.apply(.upsert(.endpointSlice(i % 2 == 0 ? notReady : ready)))
            blackHole(b.build())
        }
        benchmark.stopMeasurement()
        ready.metadata.resourceVersion = nil
    }
}
