import Foundation
import NetworkTypes
import Testing

@Suite("IPAddress")
struct IPAddressTests {
    /// Text in, canonical text out (RFC 5952 for IPv6: lower case, longest zero run compressed,
    /// the first of equal runs, a single zero group left alone).
    @Test("parses and prints canonically", arguments: [
        ("10.96.0.10", "10.96.0.10", IPFamily.ipv4),
        ("0.0.0.0", "0.0.0.0", .ipv4),
        ("255.255.255.255", "255.255.255.255", .ipv4),
        ("192.168.50.10", "192.168.50.10", .ipv4),
        ("::", "::", .ipv6),
        ("::1", "::1", .ipv6),
        ("fd00:10:96::17", "fd00:10:96::17", .ipv6),
        ("FD00:10:96::A", "fd00:10:96::a", .ipv6),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", .ipv6),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", .ipv6),
        ("2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0", .ipv6),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", .ipv6),
        ("2001:db8::", "2001:db8::", .ipv6),
        ("fe80::0:0:1", "fe80::1", .ipv6),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", .ipv6),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1", .ipv6),
    ])
    func roundTrip(_ text: String, _ canonical: String, _ family: IPFamily) throws {
        let ip = try #require(IPAddress(text))
        #expect(ip.description == canonical)
        #expect(ip.family == family)
        // Printing and parsing again gives the same address.
        #expect(IPAddress(canonical) == ip)
        #expect(IPAddress(ip.description)?.description == canonical)
    }

    @Test("rejects what is not an address", arguments: [
        "", " ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-1", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/32",
        "010.1.1.1", "0x0a.0.0.1", "1..2.3", "a.b.c.d", "10.96.0.10:80",
        ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::1", "g::1", "[::1]", "fe80::1%eth0", "::1/128",
        "2001:db8::1.2.3", "localhost",
    ])
    func invalid(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func bytesAreInNetworkOrder() throws {
        #expect(try #require(IPAddress("10.96.0.10")).bytes == [10, 96, 0, 10])
        let v6 = try #require(IPAddress("fd00:10:96::17"))
        #expect(v6.bytes == [0xfd, 0x00, 0x00, 0x10, 0x00, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x17])
        #expect(IPAddress.v4(0x0A60_000A) == IPAddress("10.96.0.10"))
    }

    @Test func bracketedForUseWithAPort() {
        #expect(IPAddress("10.0.0.1")!.bracketed == "10.0.0.1")
        #expect(IPAddress("fd00::1")!.bracketed == "[fd00::1]")
    }

    @Test("loopback and unspecified", arguments: [
        ("127.0.0.1", true, false), ("127.255.0.9", true, false), ("0.0.0.0", false, true),
        ("::1", true, false), ("::", false, true), ("10.0.0.1", false, false), ("::2", false, false),
    ])
    func specialAddresses(_ text: String, _ loopback: Bool, _ unspecified: Bool) throws {
        let ip = try #require(IPAddress(text))
        #expect(ip.isLoopback == loopback)
        #expect(ip.isUnspecified == unspecified)
    }

    @Test func ordersIPv4BeforeIPv6AndNumerically() {
        let sorted = ["fd00::2", "10.0.0.10", "fd00::1", "10.0.0.9", "::1", "9.255.255.255"].compactMap(IPAddress.init).sorted()
        #expect(sorted.map(\.description) == ["9.255.255.255", "10.0.0.9", "10.0.0.10", "::1", "fd00::1", "fd00::2"])
        #expect(IPFamily.ipv4 < .ipv6)
        #expect(!(IPFamily.ipv6 < .ipv4))
    }

    @Test func codableAsCanonicalText() throws {
        let ips = [IPAddress("10.0.0.1")!, IPAddress("FD00:0:0::1")!]
        let data = try JSONEncoder().encode(ips)
        #expect(String(decoding: data, as: UTF8.self) == #"["10.0.0.1","fd00::1"]"#)
        #expect(try JSONDecoder().decode([IPAddress].self, from: data) == ips)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([IPAddress].self, from: Data(#"["10.0.0.300"]"#.utf8)) }
    }

    @Test func familyDecodingNamesTheAllowedValues() throws {
        #expect(try JSONDecoder().decode([IPFamily].self, from: Data(#"["IPv4","IPv6"]"#.utf8)) == [.ipv4, .ipv6])
        do {
            _ = try JSONDecoder().decode([IPFamily].self, from: Data(#"["ipv4"]"#.utf8))
            Issue.record("lower-case family decoded")
        } catch DecodingError.dataCorrupted(let ctx) {
            #expect(ctx.debugDescription == #"unsupported value "ipv4": supported values: "IPv4", "IPv6""#)
        }
    }
}

@Suite("L4Protocol")
struct L4ProtocolTests {
    @Test("numbers and names", arguments: [(L4Protocol.tcp, 6, "tcp"), (.udp, 17, "udp"), (.sctp, 132, "sctp")])
    func numbersAndNames(_ proto: L4Protocol, _ number: UInt8, _ name: String) {
        #expect(proto.number == number)
        #expect(proto.lowercased == name)
        #expect(L4Protocol(rawValue: name.uppercased()) == proto)
    }

    @Test func decodingRejectsOtherSpellings() throws {
        #expect(try JSONDecoder().decode([L4Protocol].self, from: Data(#"["TCP","UDP","SCTP"]"#.utf8)) == [.tcp, .udp, .sctp])
        for bad in ["tcp", "ICMP", ""] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode([L4Protocol].self, from: Data("[\"\(bad)\"]".utf8)) }
        }
    }
}
