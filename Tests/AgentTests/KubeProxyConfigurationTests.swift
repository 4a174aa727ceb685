import Testing
@testable import Agent

struct KubeProxyConfigurationTests {
    let kubeadmStyle = """
        apiVersion: kubeproxy.config.k8s.io/v1alpha1
        kind: KubeProxyConfiguration
        bindAddress: 0.0.0.0
        clientConnection:
          kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
          qps: 5
        clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
        conntrack:
          maxPerCore: null
          min: null
        healthzBindAddress: 0.0.0.0:10256
        metricsBindAddress: 127.0.0.1:10249
        mode: nftables
        nftables:
          masqueradeAll: true
          syncPeriod: 45s
          minSyncPeriod: 2s
        iptables:
          syncPeriod: 30s
        nodePortAddresses: ["192.168.50.0/24"]
        logging:
          format: json
          verbosity: 2
        """

    @Test func readsTheFieldsKproxyUses() throws {
        let c = try KubeProxyConfiguration.parse(kubeadmStyle)
        #expect(c.mode == "nftables")
        #expect(c.clusterCIDR == "10.244.0.0/16,fd00:10:244::/56")
        #expect(c.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf")
        #expect(c.masqueradeAll == true)
        #expect(c.syncPeriod == "45s", "the mode's own section wins over iptables'")
        #expect(c.minSyncPeriod == "2s")
        #expect(c.nodePortAddresses == ["192.168.50.0/24"])
        #expect(c.loggingFormat == "json")
        #expect(c.verbosity == 2)
        #expect(c.healthzBindAddress == "0.0.0.0:10256")
        // Known kube-proxy fields kproxy does not act on are reported, not refused; null ones are not.
        #expect(c.ignoredFields.sorted() == ["bindAddress", "clientConnection.qps", "iptables.syncPeriod"].sorted()
                || c.ignoredFields.sorted() == ["bindAddress", "clientConnection.qps"].sorted())
    }

    @Test(arguments: [
        ("unknownTopLevel: 1", "unknownTopLevel"),
        ("nftables:\n  masqueradeAl: true", "nftables.masqueradeAl"),
        ("nftables: 3", "nftables"),
        ("logging:\n  verbosity: loud", "logging.verbosity"),
        ("nodePortAddresses: 10.0.0.0/8", "nodePortAddresses"),
    ])
    func unknownOrInvalidFieldsAreRefusedByName(extra: String, field: String) {
        let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" + extra
        #expect {
            try KubeProxyConfiguration.parse(text, file: "cfg.yaml")
        } throws: { error in
            (error as? KubeProxyConfiguration.Problem)?.field == field
        }
    }

    @Test func wrongKindOrVersionIsRefused() {
        #expect(throws: KubeProxyConfiguration.Problem.self) {
            try KubeProxyConfiguration.parse("apiVersion: v1\nkind: KubeProxyConfiguration\n")
        }
        #expect(throws: KubeProxyConfiguration.Problem.self) {
            try KubeProxyConfiguration.parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n")
        }
    }

    @Test func topLevelSyncPeriodsWin() throws {
        let c = try KubeProxyConfiguration.parse("""
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            syncPeriod: 1m
            nftables:
              syncPeriod: 45s
            """)
        #expect(c.syncPeriod == "1m")
    }
}
