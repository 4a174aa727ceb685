import NetnsHarness

/// A Service with one port and one EndpointSlice holding the given harness pods (each on the node
/// the harness put it on), as YAML for a manifest folder or `kubectl apply`.
struct OneServiceManifest {
    var name: String
    var namespace = "default"
    var clusterIP: String
    var portName: String
    var port: Int
    var targetPort: Int
    var proto = "TCP"
    /// `v1beta1` for the v1.20 API server: the node then comes from the slice's `topology` map.
    var sliceVersion = "v1"

    func yaml(_ c: Cluster, pods: [String]) -> String {
        var text = """
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: \(namespace)}
            spec:
              clusterIP: \(clusterIP)
              ports: [{name: \(portName), port: \(port), targetPort: \(targetPort), protocol: \(proto)}]
            ---
            apiVersion: discovery.k8s.io/\(sliceVersion)
            kind: EndpointSlice
            metadata: {name: \(name)-1, namespace: \(namespace), labels: {kubernetes.io/service-name: \(name)}}
            addressType: IPv4
            ports: [{name: \(portName), port: \(targetPort), protocol: \(proto)}]
            endpoints:

            """
        for podName in pods {
            let pod = c.pod(podName)
            let node = pod.placement == .local ? c.options.nodeName : c.options.remoteNodeName
            let place = sliceVersion == "v1" ? "nodeName: \(node)" : "topology: {kubernetes.io/hostname: \(node)}"
            text += "- {addresses: [\"\(pod.ip(.ipv4)!)\"], conditions: {ready: true}, \(place)}\n"
        }
        return text
    }
}
