import Foundation
import KubeObjects
import Testing
@testable import ObjectSources

/// A real etcd + kube-apiserver on loopback, run through `scripts/kube-apiserver.sh`, and kubectl against it.
final class TestAPIServer: Sendable {
    let directory: String
    let kubeconfig: String

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let script = repository + "/scripts/kube-apiserver.sh"

    /// The server of the enclosing `.apiServer` suite.
    @TaskLocal static var current: TestAPIServer?

    private init(directory: String) {
        self.directory = directory
        self.kubeconfig = directory + "/kubeconfig"
    }

    /// Builds kube-apiserver if it is not cached yet (minutes, once per machine). Its outcome is
    /// remembered, so a failed build skips every test with the reason instead of retrying.
    static func available() async -> Bool {
        await BuildOnce.shared.result() == nil
    }

    static func start() async throws -> TestAPIServer {
        if let problem = await BuildOnce.shared.result() { throw TestServerError(message: problem) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kproxy-apiserver-\(UUID().uuidString.prefix(8))").path
        let result = try await run(["bash", script, "start", dir],
                                   environment: ["KPROXY_OWNER_PID": "\(ProcessInfo.processInfo.processIdentifier)"])
        guard result.status == 0 else {
            throw TestServerError(message: "kube-apiserver.sh start failed (\(result.status)):\n\(result.stderr)")
        }
        return TestAPIServer(directory: dir)
    }

    func stop() async {
        _ = try? await Self.run(["bash", Self.script, "stop", directory])
    }

    /// Stops kube-apiserver (not etcd) and starts it again on the same port.
    func restart() async throws {
        let r = try await Self.run(["bash", Self.script, "restart", directory])
        guard r.status == 0 else { throw TestServerError(message: "restart failed: \(r.stderr)") }
    }

    func killAPIServer() async throws {
        _ = try await Self.run(["bash", Self.script, "kill", directory])
    }

    /// A second kube-apiserver on the same etcd; returns its kubeconfig.
    func startSecond() async throws -> String {
        let r = try await Self.run(["bash", Self.script, "second", directory])
        guard r.status == 0 else { throw TestServerError(message: "second apiserver failed: \(r.stderr)") }
        return directory + "/kubeconfig-2"
    }

    /// Compacts etcd to its current revision; returns it.
    @discardableResult
    func compact() async throws -> String {
        let r = try await Self.run(["bash", Self.script, "compact", directory])
        guard r.status == 0 else { throw TestServerError(message: "compact failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs kubectl against this server (or another kubeconfig) and returns its output; throws on failure.
    @discardableResult
    func kubectl(_ args: String..., stdin: String? = nil, kubeconfig: String? = nil) async throws -> String {
        let r = try await Self.run(["kubectl", "--kubeconfig", kubeconfig ?? self.kubeconfig] + args, stdin: stdin)
        guard r.status == 0 else {
            throw TestServerError(message: "kubectl \(args.joined(separator: " ")) failed: \(r.stderr)")
        }
        return r.stdout
    }

    func apply(_ yaml: String, kubeconfig: String? = nil) async throws {
        try await kubectl("apply", "-f", "-", stdin: yaml, kubeconfig: kubeconfig)
    }

    func clientConfig() throws -> KubeClientConfig {
        try KubeClientConfig.kubeconfig(file: kubeconfig)
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ argv: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    p.arguments = argv
                    var env = ProcessInfo.processInfo.environment
                    env.merge(environment) { $1 }
                    p.environment = env
                    let out = Pipe(), err = Pipe(), input = Pipe()
                    p.standardOutput = out
                    p.standardError = err
                    p.standardInput = input
                    try p.run()
                    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
                    try? input.fileHandleForWriting.close()
                    // Read both pipes concurrently so neither fills up.
                    final class Box: @unchecked Sendable { var data = Data() }
                    let errBox = Box()
                    let group = DispatchGroup()
                    group.enter()
                    DispatchQueue.global().async {
                        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
                        group.leave()
                    }
                    let outData = out.fileHandleForReading.readDataToEndOfFile()
                    group.wait()
                    let errData = errBox.data
                    p.waitUntilExit()
                    continuation.resume(returning: Output(status: p.terminationStatus,
                                                          stdout: String(decoding: outData, as: UTF8.self),
                                                          stderr: String(decoding: errData, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

struct TestServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Runs `kube-apiserver.sh build` once per test process.
actor BuildOnce {
    static let shared = BuildOnce()
    private var outcome: String??

    /// nil when kube-apiserver is available, else why not.
    func result() async -> String? {
        if let outcome { return outcome }
        let problem: String?
        do {
            let r = try await TestAPIServer.run(["bash", TestAPIServer.script, "build"])
            problem = r.status == 0 ? nil : "kube-apiserver could not be built here:\n\(r.stderr.suffix(3000))"
        } catch {
            problem = "kube-apiserver could not be built here: \(error)"
        }
        if let problem { print("KubeAPISourceTests: SKIPPED — \(problem)") }
        outcome = .some(problem)
        return problem
    }
}

/// Gives a suite one kube-apiserver for all its tests, stopped afterwards (also when a test fails).
struct APIServerTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let server = try await TestAPIServer.start()
        do {
            try await TestAPIServer.$current.withValue(server) { try await function() }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}

extension Trait where Self == APIServerTrait {
    /// Runs the suite against its own etcd + kube-apiserver.
    static var apiServer: APIServerTrait { APIServerTrait() }
}
