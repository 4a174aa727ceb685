#if canImport(Glibc)
import Glibc
#endif

/// Waits by blocking the thread. Test steps timed against a running stream use this rather than
/// `Task.sleep`: when other suites hold the (two) cooperative threads, a suspended test resumes late,
/// and "half a second later" becomes "after the stream ended".
func pause(ms: Int) {
    usleep(UInt32(ms) * 1000)
}
