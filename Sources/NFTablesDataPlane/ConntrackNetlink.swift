#if canImport(Glibc)
import Glibc
#endif
import CNetfilterConntrack
import NetworkTypes

/// Deletes conntrack entries over netlink with libnetfilter_conntrack: one dump of the UDP
/// entries per family, matched against every filter at once, then one delete per match. Acts
/// on the network namespace of the calling thread.
struct ConntrackNetlink {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Returns the number of entries deleted.
    func delete(_ filters: [ConntrackFilter]) throws -> Int {
        var deleted = 0
        for family in IPFamily.allCases {
            let mine = filters.filter { $0.family == family }
            if mine.isEmpty { continue }
            deleted += try delete(mine, family: family)
        }
        return deleted
    }

    private final class Collector {
        let filters: [ConntrackFilter]
        let family: IPFamily
        var matches: [OpaquePointer] = []
        init(filters: [ConntrackFilter], family: IPFamily) {
            self.filters = filters
            self.family = family
        }
    }

    private func delete(_ filters: [ConntrackFilter], family: IPFamily) throws -> Int {
        guard let dump = nfct_open(UInt8(CONNTRACK), 0) else {
            throw Failure(description: "nfct_open failed (errno \(errno))")
        }
        defer { nfct_close(dump) }
        let collector = Collector(filters: filters, family: family)
        let context = Unmanaged.passRetained(collector)
        defer { context.release() }
        let callback: @convention(c) (nf_conntrack_msg_type, OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { _, ct, data in
            guard let ct, let data else { return Int32(NFCT_CB_CONTINUE) }
            let c = Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue()
            if ConntrackNetlink.matches(ct, c.filters, c.family), let copy = nfct_clone(ct) {
                c.matches.append(copy)
            }
            return Int32(NFCT_CB_CONTINUE)
        }
        nfct_callback_register(dump, NFCT_T_ALL, callback, context.toOpaque())
        var l3 = UInt32(family == .ipv4 ? AF_INET : AF_INET6)
        if nfct_query(dump, NFCT_Q_DUMP, &l3) != 0 {
            throw Failure(description: "conntrack dump failed (errno \(errno))")
        }
        defer { for m in collector.matches { nfct_destroy(m) } }
        guard !collector.matches.isEmpty else { return 0 }
        guard let del = nfct_open(UInt8(CONNTRACK), 0) else {
            throw Failure(description: "nfct_open failed (errno \(errno))")
        }
        defer { nfct_close(del) }
        var n = 0
        for m in collector.matches where nfct_query(del, NFCT_Q_DESTROY, UnsafeRawPointer(m)) == 0 { n += 1 }
        return n
    }

    static func matches(_ ct: OpaquePointer, _ filters: [ConntrackFilter], _ family: IPFamily) -> Bool {
        guard nfct_get_attr_u8(ct, ATTR_L4PROTO) == UInt8(IPPROTO_UDP) else { return false }
        let origDst = address(ct, family == .ipv4 ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST, family)
        let replySrc = address(ct, family == .ipv4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC, family)
        let origPort = UInt16(bigEndian: nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST))
        for f in filters {
            if let d = f.originalDestination, d != origDst { continue }
            if let p = f.originalPort, p != origPort { continue }
            if let n = f.natDestination, n != replySrc { continue }
            return true
        }
        return false
    }

    private static func address(_ ct: OpaquePointer, _ attr: nf_conntrack_attr, _ family: IPFamily) -> IPAddress? {
        guard let raw = nfct_get_attr(ct, attr) else { return nil }
        if family == .ipv4 {
            return .v4(UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self)))
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<8 { hi = hi << 8 | UInt64(raw.load(fromByteOffset: i, as: UInt8.self)) }
        for i in 8..<16 { lo = lo << 8 | UInt64(raw.load(fromByteOffset: i, as: UInt8.self)) }
        return .v6(hi, lo)
    }
}
