#if canImport(Glibc)
import Glibc
#endif

/// glibc malloc settings for a long-running agent. Swift concurrency runs work on many threads,
/// and glibc gives threads their own arenas (up to 8 per core); memory freed in an arena after a
/// big sync (decoded manifests, the full-sync transaction) stays mapped there. Fewer arenas and a
/// trim after big syncs keep the resident size close to what is live.
///
/// `<malloc.h>` is not part of Swift's Glibc module, so the two functions are looked up by name.
public enum ProcessMemory {
    /// Caps malloc arenas at two (as `MALLOC_ARENA_MAX=2`, unless that variable is set). Call early.
    public static func limitArenas() {
        #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mArenaMax: Int32 = -8   // M_ARENA_MAX
        if getenv("MALLOC_ARENA_MAX") == nil, let f = symbol("mallopt", as: Mallopt.self) { _ = f(mArenaMax, 2) }
        #endif
    }

    /// Returns freed heap pages to the kernel (`malloc_trim(0)`).
    public static func returnFreedMemory() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        if let f = symbol("malloc_trim", as: MallocTrim.self) { _ = f(0) }
        #endif
    }

    #if canImport(Glibc)
    private static func symbol<F>(_ name: String, as type: F.Type) -> F? {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }   // RTLD_DEFAULT
        return unsafeBitCast(p, to: type)
    }
    #endif
}
