import ArgumentParser
import Foundation
import KubeObjects

struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Add endpoints to a service by writing one more EndpointSlice into the folder (or remove it).",
        discussion: """
            A service may have many slices; the extra one (`<service>-sandbox-extra`, in a file of its own) \
            copies the ports of the service's existing IPv4 slice and adds N ready endpoints, alternating \
            between this node (10.244.1.200…) and the remote one (10.244.2.200…). `--remove` deletes the \
            file again. Prints the file written.

            Example: kproxy-sandbox scale --manifests /tmp/demo/manifests --service default/web --add 2
            """)

    @OptionGroup var options: ManifestOptions

    @Option(help: "NAMESPACE/NAME of the service.")
    var service: String

    @Option(help: "How many endpoints to add.")
    var add = 2

    @Option(name: .customLong("remote-node"), help: "The other node's name.")
    var remoteNode = "node-b"

    @Flag(help: "Remove the extra slice instead.")
    var remove = false

    func run() throws {
        let parts = service.split(separator: "/").map(String.init)
        guard parts.count == 2 else { throw ValidationError("--service must be NAMESPACE/NAME") }
        let (ns, name) = (parts[0], parts[1])
        let path = "\(options.manifests)/zz-sandbox-\(ns)-\(name)-extra.yaml"
        if remove {
            try? FileManager.default.removeItem(atPath: path)
            print("removed \(path)")
            return
        }
        let objects = options.objects()
        let slices = objects.compactMap { o -> EndpointSlice? in
            if case .endpointSlice(let s) = o, s.serviceID == NamespacedName(namespace: ns, name: name),
               s.addressType == .ipv4 { return s }
            return nil
        }
        guard let ports = slices.first(where: { !($0.ports ?? []).isEmpty })?.ports else {
            throw ValidationError("no IPv4 EndpointSlice with ports for \(service) in \(options.manifests)")
        }
        var yaml = """
            # Written by kproxy-sandbox scale: \(add) more endpoints for \(service).
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: \(name)-sandbox-extra
              namespace: \(ns)
              labels:
                kubernetes.io/service-name: \(name)
            addressType: IPv4
            ports:

            """
        for p in ports {
            yaml += "- port: \(p.port ?? 0)\n  protocol: \((p.protocol ?? .tcp).rawValue)\n"
            if let n = p.name, !n.isEmpty { yaml += "  name: \(n)\n" }
        }
        yaml += "endpoints:\n"
        for i in 0..<add {
            let local = i % 2 == 0
            let ip = "10.244.\(local ? 1 : 2).\(200 + i / 2)"
            yaml += """
                - addresses: ["\(ip)"]
                  conditions: {ready: true}
                  nodeName: \(local ? options.node : remoteNode)

                """
        }
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        print(path)
        print(yaml, terminator: "")
    }
}
