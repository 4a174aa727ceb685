import Foundation

/// Finds the package's built executables (`testpod`, `kproxy`): an environment override
/// (`KPROXY_TESTPOD`, `KPROXY_BIN`), else next to the running executable (the test bundle lives in
/// the same build folder), else `.build/debug/` below the current directory.
public enum Binaries {
    public static func testpod() throws -> String {
        try locate("testpod", override: "KPROXY_TESTPOD")
    }

    public static func kproxy() throws -> String {
        try locate("kproxy", override: "KPROXY_BIN")
    }

    /// A built executable of this package by name; `override` names an environment variable that wins.
    public static func locate(_ name: String, override: String) throws -> String {
        let fm = FileManager.default
        if let path = ProcessInfo.processInfo.environment[override], !path.isEmpty {
            guard fm.isExecutableFile(atPath: path) else { throw HarnessError("\(override)=\(path) is not executable") }
            return path
        }
        var candidates: [String] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        candidates.append(fm.currentDirectoryPath + "/.build/debug/\(name)")
        candidates.append(fm.currentDirectoryPath + "/.build/release/\(name)")
        for c in candidates where fm.isExecutableFile(atPath: c) { return c }
        throw HarnessError("\(name) is not built (looked at \(candidates.joined(separator: ", "))): run `swift build`, or set \(override)")
    }
}
