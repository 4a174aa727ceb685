import Foundation
import NetworkTypes
import Testing

@Suite("CIDR")
struct CIDRTests {
    /// Text in, network and prefix out: host bits are cleared, a bare address is a host prefix.
    @Test("parses and masks", arguments: [
        ("10.244.1.0/24", "10.244.1.0/24"),
        ("10.244.1.17/24", "10.244.1.0/24"),
        ("10.96.0.0/16", "10.96.0.0/16"),
        ("10.255.255.255/8", "10.0.0.0/8"),
        ("192.0.2.64/26", "192.0.2.64/26"),
        ("192.0.2.127/25", "192.0.2.0/25"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("203.0.113.9/0", "0.0.0.0/0"),
        ("203.0.113.9/32", "203.0.113.9/32"),
        ("203.0.113.9", "203.0.113.9/32"),
        ("fd00:10:96::/112", "fd00:10:96::/112"),
        ("fd00:10:96::1234/112", "fd00:10:96::/112"),
        ("fd00:10:244:1::17/64", "fd00:10:244:1::/64"),
        ("fd00:10:244:1:ffff:ffff:ffff:ffff/65", "fd00:10:244:1:8000::/65"),
        ("fd00:10:244:1:ffff:ffff:ffff:ffff/63", "fd00:10:244::/63"),
        ("2001:db8::ff/120", "2001:db8::/120"),
        ("2001:db8::ff/127", "2001:db8::fe/127"),
        ("FD00::1/128", "fd00::1/128"),
        ("fd00::1", "fd00::1/128"),
        ("::/0", "::/0"),
        ("ffff::1/1", "8000::/1"),
    ])
    func parsesAndMasks(_ text: String, _ expected: String) throws {
        let cidr = try #require(CIDR(text))
        #expect(cidr.description == expected)
        #expect(CIDR(expected) == cidr)
    }

    @Test("rejects", arguments: [
        "", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8 ",
        "10.0.0.0/8/8", "10.0.0.0/a", "10.0.0.256/24", "10.0.0/24", "::/129", "fd00::1::/64", "fd00::/64%eth0",
        "10.0.0.0/999999999999999999999",
    ])
    func invalid(_ text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test("contains", arguments: [
        ("10.244.1.0/24", "10.244.1.0", true),
        ("10.244.1.0/24", "10.244.1.255", true),
        ("10.244.1.0/24", "10.244.2.0", false),
        ("10.244.1.0/24", "10.244.0.255", false),
        ("10.244.0.0/16", "10.244.3.23", true),
        ("0.0.0.0/0", "203.0.113.1", true),
        ("0.0.0.0/0", "::1", false),
        ("203.0.113.9/32", "203.0.113.9", true),
        ("203.0.113.9/32", "203.0.113.8", false),
        ("fd00:10:244:1::/64", "fd00:10:244:1:ffff:ffff:ffff:ffff", true),
        ("fd00:10:244:1::/64", "fd00:10:244:2::1", false),
        ("fd00:10:96::/112", "fd00:10:96::17", true),
        ("fd00:10:96::/112", "fd00:10:96::1:17", false),
        ("fd00:10:244::/56", "fd00:10:244:ff::1", true),
        ("fd00:10:244::/56", "fd00:10:244:100::1", false),
        ("::/0", "fd00::1", true),
        ("::/0", "10.0.0.1", false),
        ("::ffff:0:0/96", "10.0.0.1", false),
        ("2001:db8::fe/127", "2001:db8::ff", true),
        ("2001:db8::fe/127", "2001:db8::100", false),
    ])
    func contains(_ cidr: String, _ ip: String, _ expected: Bool) throws {
        let prefix = try #require(CIDR(cidr))
        let address = try #require(IPAddress(ip))
        #expect(prefix.contains(address) == expected)
    }

    @Test func familyAndParts() throws {
        let v4 = try #require(CIDR("10.96.0.0/16"))
        #expect(v4.family == .ipv4)
        #expect(v4.address == IPAddress("10.96.0.0"))
        #expect(v4.prefixLength == 16)
        let v6 = CIDR(address: IPAddress("fd00:10:96::17")!, prefixLength: 112)
        #expect(v6.family == .ipv6)
        #expect(v6.address == IPAddress("fd00:10:96::"))
    }

    @Test func sortsByAddressThenLength() {
        let sorted = ["fd00::/8", "10.0.0.0/16", "10.0.0.0/8", "9.0.0.0/8"].compactMap { CIDR($0) }.sorted()
        #expect(sorted.map(\.description) == ["9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "fd00::/8"])
    }

    @Test func codableAsText() throws {
        let data = try JSONEncoder().encode([CIDR("10.244.1.7/24")!])
        #expect(String(decoding: data, as: UTF8.self) == #"["10.244.1.0\/24"]"# || String(decoding: data, as: UTF8.self) == #"["10.244.1.0/24"]"#)
        #expect(try JSONDecoder().decode([CIDR].self, from: data) == [CIDR("10.244.1.0/24")!])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([CIDR].self, from: Data(#"["10.0.0.0/33"]"#.utf8)) }
    }
}
