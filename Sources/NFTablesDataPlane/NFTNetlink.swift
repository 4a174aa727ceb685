#if canImport(Glibc)
import Glibc
#endif
import NetworkTypes

/// Element bulk loads straight over nfnetlink: one batch (one kernel transaction) of
/// `flush set` and `add element` messages, encoded from the model without text.
///
/// libnftables costs ~6 µs per element to parse and evaluate its text (2 s for the 350k elements
/// of 50k services × 5 endpoints); encoding the same elements here costs a fraction of that, and
/// the kernel's own work is unchanged. Used for the element part of full syncs; everything else
/// (declarations, chains, small incremental changes) goes through libnftables.
struct NFTNetlinkBatch {
    fileprivate(set) var bytes: [UInt8] = []
    private var seq: UInt32
    /// Messages that ask for an acknowledgement, by sequence number, with what they did.
    private(set) var acked: [UInt32: String] = [:]

    static let subsys: UInt16 = 10            // NFNL_SUBSYS_NFTABLES
    static let newSetElem: UInt16 = 12         // NFT_MSG_NEWSETELEM
    static let delSetElem: UInt16 = 14         // NFT_MSG_DELSETELEM
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4, create: UInt16 = 0x400
    static let nested: UInt16 = 0x8000         // NLA_F_NESTED
    /// Keep each message's element list under the 16-bit attribute length.
    static let maxElementsBytes = 60_000

    init(firstSequence: UInt32) {
        seq = firstSequence
        bytes.reserveCapacity(1 << 20)
        header(type: 0x10, flags: Self.request, family: 0, resID: Self.subsys)   // NFNL_MSG_BATCH_BEGIN
        finishMessage(at: 0)
    }

    /// Closes the batch (NFNL_MSG_BATCH_END).
    mutating func end() {
        let start = bytes.count
        header(type: 0x11, flags: Self.request, family: 0, resID: Self.subsys)
        finishMessage(at: start)
    }

    /// Removes every element of a set or map.
    mutating func flush(family: IPFamily, table: String, set: String) {
        let start = bytes.count
        acked[seq] = "flush \(set)"
        header(type: Self.subsys << 8 | Self.delSetElem, flags: Self.request | Self.ack, family: family)
        string(1, table)
        string(2, set)
        finishMessage(at: start)
    }

    /// Adds elements; `encode` writes one element's attributes (key, data) for index `i`.
    mutating func add(family: IPFamily, table: String, set: String, count: Int,
                      encode: (inout NFTNetlinkBatch, Int) -> Void) {
        elements(add: true, family: family, table: table, set: set, count: count, encode: encode)
    }

    /// Deletes elements; `encode` writes one element's key for index `i`.
    mutating func delete(family: IPFamily, table: String, set: String, count: Int,
                         encode: (inout NFTNetlinkBatch, Int) -> Void) {
        elements(add: false, family: family, table: table, set: set, count: count, encode: encode)
    }

    private mutating func elements(add: Bool, family: IPFamily, table: String, set: String, count: Int,
                                   encode: (inout NFTNetlinkBatch, Int) -> Void) {
        var i = 0
        while i < count {
            let start = bytes.count
            acked[seq] = "\(add ? "add" : "delete") element \(set)"
            header(type: Self.subsys << 8 | (add ? Self.newSetElem : Self.delSetElem),
                   flags: Self.request | Self.ack | (add ? Self.create : 0), family: family)
            string(1, table)
            string(2, set)
            let list = beginNested(3)                       // NFTA_SET_ELEM_LIST_ELEMENTS
            while i < count && bytes.count - list < Self.maxElementsBytes {
                let elem = beginNested(1)                   // NFTA_LIST_ELEM
                encode(&self, i)
                endNested(elem)
                i += 1
            }
            endNested(list)
            finishMessage(at: start)
        }
    }

    // MARK: element attributes

    /// NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE fields }.
    mutating func key(_ fields: [NFTField]) { value(1, fields) }
    /// NFTA_SET_ELEM_DATA { NFTA_DATA_VALUE fields }.
    mutating func data(_ fields: [NFTField]) { value(2, fields) }

    /// NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT { code, chain } }.
    mutating func verdict(code: Int32, chain: String?) {
        let d = beginNested(2)
        let v = beginNested(2)                              // NFTA_DATA_VERDICT
        attribute(1) { $0.appendBE(UInt32(bitPattern: code)) }   // NFTA_VERDICT_CODE
        if let chain { string(2, chain) }                   // NFTA_VERDICT_CHAIN
        endNested(v)
        endNested(d)
    }

    private mutating func value(_ type: UInt16, _ fields: [NFTField]) {
        let n = beginNested(type)
        attribute(1) { b in for f in fields { f.append(to: &b) } }   // NFTA_DATA_VALUE
        endNested(n)
    }

    // MARK: netlink framing

    private mutating func header(type: UInt16, flags: UInt16, family: IPFamily) {
        header(type: type, flags: flags, family: family == .ipv4 ? 2 : 10, resID: 0)
    }

    private mutating func header(type: UInt16, flags: UInt16, family: UInt8, resID: UInt16) {
        appendLE(UInt32(0))             // nlmsg_len, patched by finishMessage
        appendLE(type)
        appendLE(flags)
        appendLE(seq)
        appendLE(UInt32(0))             // nlmsg_pid
        bytes.append(family)            // nfgenmsg
        bytes.append(0)                 // NFNETLINK_V0
        appendBE(resID)
        seq &+= 1
    }

    private mutating func finishMessage(at start: Int) {
        patchLE(UInt32(bytes.count - start), at: start)
    }

    private mutating func string(_ type: UInt16, _ s: String) {
        attribute(type) { b in b.bytes.append(contentsOf: Array(s.utf8)); b.bytes.append(0) }
    }

    private mutating func attribute(_ type: UInt16, _ payload: (inout NFTNetlinkBatch) -> Void) {
        let start = bytes.count
        appendLE(UInt16(0))
        appendLE(type)
        payload(&self)
        patchLE16(UInt16(bytes.count - start), at: start)
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    private mutating func beginNested(_ type: UInt16) -> Int {
        let start = bytes.count
        appendLE(UInt16(0))
        appendLE(type | Self.nested)
        return start
    }

    private mutating func endNested(_ start: Int) {
        patchLE16(UInt16(bytes.count - start), at: start)
    }

    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    private mutating func patchLE(_ v: UInt32, at i: Int) {
        withUnsafeBytes(of: v.littleEndian) { for k in 0..<4 { bytes[i + k] = $0[k] } }
    }

    private mutating func patchLE16(_ v: UInt16, at i: Int) {
        withUnsafeBytes(of: v.littleEndian) { for k in 0..<2 { bytes[i + k] = $0[k] } }
    }
}

extension NFTField {
    /// The field as the kernel stores it in a concatenation: network byte order for addresses,
    /// protocols and ports, host order for priorities, each padded to 32 bits.
    func append(to b: inout NFTNetlinkBatch) {
        switch self {
        case .address(let ip):
            b.bytes.append(contentsOf: ip.bytes)
        case .proto(let p):
            b.bytes.append(contentsOf: [p.number, 0, 0, 0])
        case .port(let p):
            b.bytes.append(contentsOf: [UInt8(p >> 8), UInt8(p & 0xff), 0, 0])
        case .priority(let m):
            b.appendLE(m)
        case .cidr:
            preconditionFailure("interval elements are loaded through libnftables")
        }
    }
}

/// A netlink socket to nf_tables in the calling thread's network namespace.
struct NFTNetlinkSocket {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends a batch and waits for every acknowledgement. Throws the first error the kernel
    /// reported; the kernel then applied none of the batch.
    static func apply(_ batch: NFTNetlinkBatch) throws {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 12)   // NETLINK_NETFILTER
        guard fd >= 0 else { throw Failure(description: "netlink socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // struct sockaddr_nl { sa_family_t nl_family; unsigned short pad; u32 nl_pid; u32 nl_groups; }
        var addr: [UInt8] = [UInt8(AF_NETLINK), 0] + [UInt8](repeating: 0, count: 10)
        let bound = addr.withUnsafeMutableBytes {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(12))
        }
        guard bound == 0 else { throw Failure(description: "netlink bind: \(String(cString: strerror(errno)))") }
        var size = Int32(clamping: batch.bytes.count + 65536)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(4))
        var rcv = Int32(4 << 20)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, socklen_t(4))

        let sent = batch.bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == batch.bytes.count else {
            throw Failure(description: "netlink send: \(sent < 0 ? String(cString: strerror(errno)) : "short write")")
        }

        var pending = Set(batch.acked.keys)
        var firstError: String?
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while !pending.isEmpty {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // After an error the kernel may not acknowledge the rest: stop once it goes quiet.
            let ready = poll(&p, 1, firstError == nil ? 60_000 : 200)
            if ready <= 0 { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            var off = 0
            while off + 16 <= n {
                let len = Int(load32(buffer, off))
                let type = load16(buffer, off + 4)
                let seq = load32(buffer, off + 8)
                if len < 16 { break }
                if type == 2, off + 20 <= n {                        // NLMSG_ERROR
                    let code = Int32(bitPattern: load32(buffer, off + 16))
                    pending.remove(seq)
                    if code != 0, firstError == nil {
                        firstError = "\(batch.acked[seq] ?? "message \(seq)"): \(String(cString: strerror(-code)))"
                    }
                }
                off += (len + 3) & ~3
            }
        }
        if let firstError { throw Failure(description: firstError) }
        if !pending.isEmpty { throw Failure(description: "netlink: \(pending.count) messages not acknowledged") }
    }

    private static func load32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    private static func load16(_ b: [UInt8], _ i: Int) -> UInt16 {
        UInt16(b[i]) | UInt16(b[i + 1]) << 8
    }
}
