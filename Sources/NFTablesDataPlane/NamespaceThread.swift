#if canImport(Glibc)
import Glibc
#endif
import CNFTables
import Foundation

/// A dedicated thread, optionally entered into another network namespace, that runs work
/// submitted from async code one item at a time. libnftables and netlink act on the namespace
/// of the calling thread, so everything kernel-facing of a data plane runs here; this is also
/// how tests and benchmarks program a scratch namespace without touching the host.
final class NamespaceThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false
    private var startError: String?
    private var started = false

    /// `netnsPath`: e.g. `/run/netns/NAME`; nil keeps the process's namespace.
    init(netnsPath: String?, name: String = "kproxy-nft") throws {
        let thread = Thread { [self] in self.main(netnsPath) }
        thread.name = name
        thread.start()
        condition.lock()
        while !started { condition.wait() }
        let err = startError
        condition.unlock()
        if let err { throw NFTError(message: err) }
    }

    private func main(_ netnsPath: String?) {
        var err: String?
        if let netnsPath {
            let fd = open(netnsPath, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                err = "open \(netnsPath): \(String(cString: strerror(errno)))"
            } else {
                if kproxy_enter_netns(fd) != 0 { err = "setns \(netnsPath): \(String(cString: strerror(errno)))" }
                close(fd)
            }
        }
        condition.lock()
        started = true
        startError = err
        condition.broadcast()
        condition.unlock()
        if err != nil { return }
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty && stopping {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    private func enqueue(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Queues `body` without waiting for it.
    func submit(_ body: @escaping @Sendable () -> Void) { enqueue(body) }

    /// Runs `body` on the thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            enqueue { cont.resume(with: Result { try body() }) }
        }
    }

    /// Runs `body` on the thread, blocking the caller (for synchronous callers such as tools).
    func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let done = NSCondition()
        nonisolated(unsafe) var result: Result<T, Error>?
        enqueue {
            let r = Result { try body() }
            done.lock()
            result = r
            done.signal()
            done.unlock()
        }
        done.lock()
        while result == nil { done.wait() }
        done.unlock()
        return try result!.get()
    }

    /// Lets the thread finish the queued work and exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }
}
