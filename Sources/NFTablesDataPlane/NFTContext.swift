import CNFTables

/// The kernel refused a command buffer; nothing of it was applied.
public struct NFTError: Error, CustomStringConvertible, Sendable {
    /// libnftables' error output (the kernel's message and the offending line).
    public var message: String
    public var description: String { "nftables: \(message)" }
}

/// A libnftables context: the nft front end in process. Not thread-safe and bound to the
/// network namespace of the thread that created it (its netlink socket is opened there), so
/// it lives on one `NamespaceThread` and is used only there.
final class NFTContext {
    private let ctx: OpaquePointer

    init() throws {
        guard let c = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw NFTError(message: "nft_ctx_new failed")
        }
        ctx = c
        nft_ctx_buffer_output(ctx)
        nft_ctx_buffer_error(ctx)
    }

    deinit { nft_ctx_free(ctx) }

    /// Sets JSON output for `list` commands.
    var json: Bool {
        get { nft_ctx_output_get_flags(ctx) & UInt32(NFT_CTX_OUTPUT_JSON) != 0 }
        set {
            var flags = nft_ctx_output_get_flags(ctx)
            if newValue { flags |= UInt32(NFT_CTX_OUTPUT_JSON) } else { flags &= ~UInt32(NFT_CTX_OUTPUT_JSON) }
            nft_ctx_output_set_flags(ctx, flags)
        }
    }

    /// Runs a buffer of commands as one transaction; returns the output, throws the error output.
    @discardableResult
    func run(_ commands: String) throws -> String {
        let rc = commands.withCString { nft_run_cmd_from_buffer(ctx, $0) }
        // Copy both buffers at once: the next command resets them.
        let out = nft_ctx_get_output_buffer(ctx).map { String(cString: $0) } ?? ""
        let err = nft_ctx_get_error_buffer(ctx).map { String(cString: $0) } ?? ""
        if rc != 0 {
            throw NFTError(message: err.isEmpty ? "command failed (\(rc))" : Self.trim(err))
        }
        return out
    }

    /// Error output repeats whole (possibly megabyte) command lines; keep it readable.
    private static func trim(_ s: String) -> String {
        let lines = s.split(separator: "\n", omittingEmptySubsequences: true).map { line in
            line.count > 400 ? String(line.prefix(400)) + "…" : String(line)
        }
        return lines.prefix(12).joined(separator: "\n")
    }
}
